"""LoadedModel with real ONNX Runtime sessions: a model that cannot run as its manifest says is a
ModelError at load naming the folder and both shapes, with ``warmup_runs = 0`` too; one that
agrees (symbolic dimensions included) loads and runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.errors import ModelError
from edge.inference.model import LoadedModel
from tests.support.onnx_models import classifier_model, write_model_folder, yolo_model

LABELS = ("ok", "bad")


def classifier_manifest(size: int = 32, **extra: Any) -> dict[str, Any]:
    return {
        "name": "tiny-cls",
        "task": "classification",
        "input": {"name": "input", "shape": [1, 1, size, size], "color": "gray"},
        "outputs": [{"name": "logits", "kind": "logits"}],
        "labels": list(LABELS),
        "ok_labels": ["ok"],
        **extra,
    }


def dynamic_classifier() -> onnx.ModelProto:
    """``classifier_model`` with symbolic batch, height and width: takes any size."""
    model = classifier_model(len(LABELS))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, name in zip(dims, ("batch", None, "height", "width")):
        if name:
            dim.dim_param = name
    return model


def test_an_agreeing_model_loads_and_runs(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "m", classifier_model(len(LABELS)), classifier_manifest())
    model = LoadedModel(folder, warmup_runs=0)
    out = model.infer(np.full((48, 64, 3), 128, np.uint8))
    assert out.quality is not None and out.quality.label in LABELS


def test_symbolic_dimensions_match_the_manifest(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "m", dynamic_classifier(), classifier_manifest(size=48))
    assert LoadedModel(folder, warmup_runs=0).infer(np.zeros((20, 20), np.uint8)).quality is not None


@pytest.mark.parametrize("warmup_runs", [0, 3])
def test_input_shape_mismatch_fails_at_load_naming_both(tmp_path: Path, warmup_runs: int) -> None:
    folder = write_model_folder(tmp_path / "m", classifier_model(len(LABELS), size=64), classifier_manifest())
    with pytest.raises(ModelError) as caught:
        LoadedModel(folder, warmup_runs=warmup_runs)
    assert str(caught.value) == (
        f"{folder}: model 'tiny-cls' (model.onnx) does not match its manifest: the manifest's input "
        "'input' has shape [1, 1, 32, 32] (NCHW), the model's is [1, 1, 64, 64]; correct input.shape "
        "in the manifest or re-export the model"
    )


def test_output_count_mismatch_fails_at_load(tmp_path: Path) -> None:
    folder = write_model_folder(tmp_path / "m", classifier_model(5), classifier_manifest())
    with pytest.raises(
        ModelError, match=r"output 'logits' has shape \[1, 5\], 5 value\(s\), for the manifest's 2"
    ):
        LoadedModel(folder, warmup_runs=0)


def test_output_name_mismatch_fails_at_load(tmp_path: Path) -> None:
    manifest = classifier_manifest(outputs=[{"name": "scores", "kind": "logits"}])
    folder = write_model_folder(tmp_path / "m", classifier_model(len(LABELS)), manifest)
    with pytest.raises(
        ModelError, match=r"output\(s\) \['scores'\] are not among the model's outputs \['logits'\]"
    ):
        LoadedModel(folder, warmup_runs=0)


def test_detection_layout_mismatch_fails_at_load(tmp_path: Path) -> None:
    manifest = {
        "name": "tiny-det",
        "task": "detection",
        "input": {"name": "images", "shape": [1, 3, 64, 64], "color": "rgb"},
        "outputs": [{"name": "output0", "kind": "yolo"}],
        "labels": ["a", "b"],  # 4+C = 6, the model gives 4+3 = 7 rows
    }
    folder = write_model_folder(tmp_path / "d", yolo_model(np.zeros((1, 7, 10), np.float32)), manifest)
    with pytest.raises(ModelError, match=r"output 'output0' has shape \[1, 7, 10\], not the YOLO layout"):
        LoadedModel(folder, warmup_runs=0)


def test_a_model_that_fails_when_run_fails_at_load_even_without_warmup(tmp_path: Path) -> None:
    """Shapes that agree on paper, a graph that cannot run: the check run at load finds it."""
    shape = numpy_helper.from_array(np.array([1, 3], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["logits"])],  # 1024 values into [1, 3]: fails
        "broken",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, len(LABELS)])],
        [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder = write_model_folder(tmp_path / "m", model, classifier_manifest())
    with pytest.raises(ModelError) as caught:
        LoadedModel(folder, warmup_runs=0)
    assert str(caught.value).startswith(
        f"{folder}: model 'tiny-cls' (model.onnx) fails on a blank 32x32 frame at load"
    )


def _screen(x0: int, x1: int) -> np.ndarray:
    """A 'scanner screen': black, with a bright speckled imaging area between columns x0 and x1."""
    img = np.zeros((120, 160), np.uint8)
    img[10:110, x0:x1] = np.random.default_rng(0).integers(60, 200, (100, x1 - x0), dtype=np.uint8)
    return img


def test_reset_view_makes_a_sector_view_model_find_the_imaging_area_again(tmp_path: Path) -> None:
    man = classifier_manifest()
    man["input"]["view"] = "sector"
    model = LoadedModel(write_model_folder(tmp_path / "m", classifier_model(len(LABELS)), man), warmup_runs=0)
    tracker = model._task.preprocessor.tracker  # type: ignore[attr-defined]
    model.infer(_screen(20, 90))
    first = tracker.sector
    assert first is not None and first.box[0] == pytest.approx(20, abs=3)
    model.infer(_screen(60, 150))  # the same size, another layout: kept until told
    assert tracker.sector is first
    model.reset_view()
    model.infer(_screen(60, 150))
    assert tracker.sector is not None and tracker.sector.box[0] == pytest.approx(60, abs=3)
