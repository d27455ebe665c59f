"""Shapes compared at load: fixed dimensions must agree, symbolic ones match anything, and each task
says which output shapes it can decode."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from edge.errors import ModelError
from edge.inference.manifest import Manifest
from edge.inference.shapes import check_session, element_type, fmt, matches, static
from edge.inference.tasks.classification import ClassificationTask
from edge.inference.tasks.detection import DetectionTask


def manifest(task: str = "classification", labels: tuple[str, ...] = ("a", "b", "c")) -> Manifest:
    return Manifest.model_validate(
        {
            "name": "m",
            "version": "1",
            "task": task,
            "input": {"name": "x", "shape": [1, 1, 32, 32], "color": "gray"},
            "outputs": [{"name": "y", "kind": "yolo" if task == "detection" else "logits"}],
            "labels": list(labels),
            "files": {"fp32": {"path": "m.onnx", "sha256": "0" * 64}},
        }
    )


def test_static_and_symbolic_dimensions() -> None:
    assert [static(d) for d in (1, 64, "batch", None, -1, 0, True)] == [1, 64, None, None, None, None, None]
    assert fmt((1, "batch", None, -1, 32)) == "[1, batch, ?, ?, 32]"
    assert matches((1, 1, 32, 32), (1, 1, 32, 32))
    assert matches((1, 1, 32, 32), ("N", 1, "H", None))
    assert not matches((1, 1, 32, 32), (1, 1, 64, 64))
    assert not matches((1, 1, 32, 32), (1, 32, 32))  # rank differs
    assert not matches((1, 1, 32, 32), (4, 1, 32, 32))  # a fixed batch of 4 is not 1


def test_element_types() -> None:
    assert element_type("tensor(float)") == "float32"
    assert element_type("tensor(uint8)") == "uint8"
    assert element_type("float16") == "float16"
    assert element_type("tensor(int64)") == "int64"


@pytest.mark.parametrize(
    ("shape", "ok"),
    [((1, 3), True), (("N", 3), True), ((3,), True), ((1, 1, 1, 3), True), (("N", 1), True), ((1, 5), False)],
)
def test_classification_output_is_one_score_per_label(shape: tuple[object, ...], ok: bool) -> None:
    problem = ClassificationTask(manifest()).check_output("y", shape)  # type: ignore[arg-type]
    assert (problem is None) == ok
    if not ok:
        assert problem == "the model's output 'y' has shape [1, 5], 5 value(s), for the manifest's 3 labels"


@pytest.mark.parametrize(
    ("shape", "ok"),
    [
        ((1, 7, 100), True),
        ((1, 100, 7), True),
        ((7, 100), True),
        (("N", 7, "boxes"), True),
        ((1, "C", "N"), True),
        ((1, 8, 100), False),
        ((2, 7, 100), False),
        ((1, 1, 7, 100), False),
    ],
)
def test_detection_output_is_yolo_layout_for_the_labels(shape: tuple[object, ...], ok: bool) -> None:
    task = DetectionTask(manifest("detection"))  # 3 labels: 4+C = 7
    problem = task.check_output("y", shape)  # type: ignore[arg-type]
    assert (problem is None) == ok, problem
    if not ok:
        assert (
            problem is not None and "not the YOLO layout [1, 4+C, N] with C = 3 labels (4+C = 7)" in problem
        )


def session(**attrs: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "input_shapes": {"x": (1, 1, 32, 32)},
        "input_dtypes": {"x": "tensor(float)"},
        "output_names": ("y",),
        "output_shapes": {"y": (1, 3)},
    }
    return SimpleNamespace(**(base | attrs))


def test_check_session_names_the_folder_and_both_views() -> None:
    m = manifest()
    task = ClassificationTask(m)
    folder, file = Path("/models/m"), Path("/models/m/m.onnx")
    check_session(folder, file, m, session(), task)  # agrees: nothing raised
    check_session(folder, file, m, SimpleNamespace(), task)  # tells nothing: not checked here
    cases = [
        (
            session(input_shapes={"x": (1, 1, 64, 64)}),
            "input 'x' has shape [1, 1, 32, 32] (NCHW), the model's is [1, 1, 64, 64]",
        ),
        (session(input_dtypes={"x": "tensor(uint8)"}), "input 'x' is float32, the model takes uint8"),
        (
            session(output_names=("z",), output_shapes={"z": (1, 3)}),
            "output(s) ['y'] are not among the model's outputs ['z']",
        ),
        (
            session(output_shapes={"y": (1, 4)}),
            "output 'y' has shape [1, 4], 4 value(s), for the manifest's 3 labels",
        ),
    ]
    for sess, detail in cases:
        with pytest.raises(ModelError) as caught:
            check_session(folder, file, m, sess, task)
        assert str(caught.value).startswith("/models/m: model 'm' (m.onnx) does not match its manifest: ")
        assert detail in str(caught.value)
