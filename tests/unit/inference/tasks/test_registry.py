"""The task registry: the manifest's ``task`` picks the Task; an unknown one is refused by name,
and a task registered by the user runs through LoadedModel like the built-in ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.errors import ManifestError
from edge.inference.manifest import Manifest, load_manifest
from edge.inference.model import LoadedModel
from edge.inference.preprocess import Transform
from edge.inference.tasks import TaskOutput, known_tasks, register_task, registry, task_for
from edge.inference.tasks.classification import ClassificationTask
from edge.inference.tasks.detection import DetectionTask
from edge.results import Finding
from tests.support.onnx_models import write_model_folder


@pytest.fixture(autouse=True)
def _registry_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks registered by a test are gone after it."""
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))


def test_built_in_tasks(tiny_classifier: Callable[..., Path]) -> None:
    assert known_tasks() == ("classification", "detection")
    assert isinstance(task_for(load_manifest(tiny_classifier()).manifest), ClassificationTask)


def test_a_task_no_one_registered_names_it_and_the_known_ones(tiny_classifier: Callable[..., Path]) -> None:
    folder = tiny_classifier(task="segmentation")
    with pytest.raises(ManifestError) as e:
        LoadedModel(folder)
    assert str(e.value) == (
        "model 'tiny-cls': unknown task 'segmentation'; known tasks: classification, detection "
        "(a new one is added with edge.inference.tasks.register_task)"
    )


def test_the_task_name_must_be_a_plain_word(tiny_classifier: Callable[..., Path]) -> None:
    with pytest.raises(ManifestError, match="task: String should match pattern"):
        load_manifest(tiny_classifier(task="Seg mentation"))


def _mean_model() -> onnx.ModelProto:
    """Gray [1,1,8,8] -> its mean, [1,1,1,1]."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["mean"], keepdims=1)],
        "mean",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, 1, 1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class BrightnessTask:
    """A user's task, written against the protocol only: its own input, a whole-frame finding
    when the frame is bright, and a mask (the room left for segmentation) passed through."""

    name = "brightness"
    made: ClassVar[list[BrightnessTask]] = []

    def __init__(self, manifest: Manifest) -> None:
        self.label = manifest.labels[0]
        self.prepared = 0
        BrightnessTask.made.append(self)

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        self.prepared += 1
        gray = image if image.ndim == 2 else image[..., 0]
        tensor = np.full((1, 1, 8, 8), float(gray.mean()) / 255.0, np.float32)
        return tensor, Transform(1.0, 1.0, 0.0, 0.0)

    def decode(
        self, outputs: Sequence[np.ndarray], transform: Transform, frame_hw: tuple[int, int]
    ) -> TaskOutput:
        level = float(np.asarray(outputs[0]).reshape(-1)[0])
        findings = (Finding(self.label, level),) if level > 0.5 else ()
        return TaskOutput(findings=findings, masks=np.full(frame_hw, int(level > 0.5), np.uint8))


def test_a_registered_task_loads_and_runs_through_loaded_model(tmp_path: Path) -> None:
    register_task("brightness", BrightnessTask)
    assert known_tasks() == ("brightness", "classification", "detection")
    folder = write_model_folder(
        tmp_path / "bright",
        _mean_model(),
        {
            "name": "bright",
            "task": "brightness",
            "input": {"name": "x", "shape": [1, 1, 8, 8], "color": "gray"},
            "outputs": [{"name": "mean", "kind": "probabilities"}],
            "labels": ["bright"],
        },
    )
    BrightnessTask.made.clear()
    model = LoadedModel(folder, warmup_runs=2)
    assert model.task == "brightness" and model.info.backend == "onnxruntime"
    (task,) = BrightnessTask.made  # one Task per loaded model
    assert task.prepared == 2  # the warm-up ran through it
    lit = model.infer(np.full((6, 10), 200, np.uint8))
    assert lit.quality is None
    assert [(f.label, round(f.confidence, 3)) for f in lit.findings] == [("bright", round(200 / 255, 3))]
    assert lit.masks is not None and lit.masks.shape == (6, 10) and lit.masks.all()
    dark = model.infer(np.zeros((6, 10, 3), np.uint8))
    assert dark.findings == () and dark.masks is not None and not dark.masks.any()


def test_a_registered_task_may_replace_a_built_in(tiny_classifier: Callable[..., Path]) -> None:
    seen: list[str] = []

    def factory(manifest: Manifest) -> ClassificationTask:
        seen.append(manifest.name)
        return ClassificationTask(manifest)

    register_task("classification", factory)
    LoadedModel(tiny_classifier(), warmup_runs=0)
    assert seen == ["tiny-cls"]
    assert registry._TASKS["detection"] is DetectionTask


def test_models_list_fails_a_model_whose_task_no_one_registered(
    tiny_classifier: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from edge.cli.models import _cmd_models_list

    ok, unknown = tiny_classifier(), tiny_classifier(name="seg", task="segmentation")
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[[models]]\nname = "a"\npath = "{ok}"\n[[models]]\nname = "b"\npath = "{unknown}"\n')
    assert _cmd_models_list(argparse.Namespace(config=cfg)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny-cls ") and lines[0].endswith("[ok]")
    assert lines[1].startswith("b ") and "FAILED: model 'seg': unknown task 'segmentation'" in lines[1]
