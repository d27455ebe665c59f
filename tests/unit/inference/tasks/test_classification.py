"""Classification task: scores per label -> a Quality verdict, alone and through LoadedModel."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError
from edge.inference.manifest import Manifest
from edge.inference.model import LoadedModel
from edge.inference.preprocess import Transform
from edge.inference.tasks.classification import ClassificationTask, softmax

SAME = Transform(1.0, 1.0, 0.0, 0.0)


def _manifest(kind: str = "logits") -> Manifest:
    return Manifest.model_validate(
        {
            "name": "cls",
            "version": "1",
            "task": "classification",
            "input": {"name": "input", "shape": [1, 1, 32, 32], "color": "gray"},
            "outputs": [{"name": "out", "kind": kind}],
            "labels": ["good", "dark", "noisy"],
            "ok_labels": ["good"],
            "files": {"fp32": {"path": "m.onnx", "sha256": "0" * 64}},
        }
    )


def test_logits_are_softmaxed_and_the_top_label_wins() -> None:
    logits = np.array([[0.1, 2.0, -1.0]], np.float32)
    out = ClassificationTask(_manifest()).decode([logits], SAME, (32, 32))
    assert out.findings == () and out.masks is None
    q = out.quality
    assert q is not None and q.label == "dark" and not q.ok
    want = softmax(logits.reshape(-1))
    assert q.score == pytest.approx(float(want[1]))
    assert list(q.probabilities) == ["good", "dark", "noisy"]
    assert sum(q.probabilities.values()) == pytest.approx(1.0)


def test_probabilities_are_used_as_they_are() -> None:
    probs = np.array([0.7, 0.2, 0.1], np.float32)
    q = ClassificationTask(_manifest("probabilities")).decode([probs], SAME, (32, 32)).quality
    assert q is not None and (q.label, q.ok) == ("good", True)
    assert q.score == pytest.approx(0.7)


def test_an_output_that_does_not_fit_the_labels_names_the_model() -> None:
    with pytest.raises(ModelError, match=r"model 'cls': output has 4 values for 3 labels"):
        ClassificationTask(_manifest()).decode([np.zeros((1, 4), np.float32)], SAME, (32, 32))


def test_classification_result(tiny_classifier: Callable[..., Path]) -> None:
    model = LoadedModel(tiny_classifier(labels=("dark", "mid", "bright")))
    bright = model.infer(np.full((40, 60, 3), 250, np.uint8)).quality
    dark = model.infer(np.zeros((40, 60), np.uint8)).quality
    assert bright is not None and dark is not None
    assert bright.label == "bright" and not bright.ok
    assert dark.label == "dark" and dark.ok
    assert abs(sum(bright.probabilities.values()) - 1) < 1e-5


def _with_fault_min(t: float) -> Manifest:
    m = _manifest("probabilities").model_dump()
    m["thresholds"] = {"fault_min_confidence": t}
    return Manifest.model_validate(m)


def test_an_unsure_fault_is_not_called_below_the_manifests_fault_min_confidence() -> None:
    probs = np.array([0.35, 0.55, 0.10], np.float32)  # "dark" on top, but under 0.6
    q = ClassificationTask(_with_fault_min(0.6)).decode([probs], SAME, (32, 32)).quality
    assert q is not None and (q.label, q.ok) == ("good", True)
    assert q.score == pytest.approx(0.35)
    assert q.probabilities["dark"] == pytest.approx(0.55)  # the fault's probability is still shown


def test_a_sure_fault_is_called_at_or_above_the_threshold_and_zero_keeps_the_top_label() -> None:
    at = np.array([0.3, 0.6, 0.1], np.float32)
    q = ClassificationTask(_with_fault_min(0.6)).decode([at], SAME, (32, 32)).quality
    assert q is not None and (q.label, q.ok) == ("dark", False)
    low = np.array([0.35, 0.55, 0.10], np.float32)
    q0 = ClassificationTask(_with_fault_min(0.0)).decode([low], SAME, (32, 32)).quality
    assert q0 is not None and q0.label == "dark"


def test_without_ok_labels_the_threshold_cannot_fall_back_and_the_top_label_stays() -> None:
    m = _with_fault_min(0.9).model_dump()
    m["ok_labels"] = []
    probs = np.array([0.2, 0.5, 0.3], np.float32)
    q = ClassificationTask(Manifest.model_validate(m)).decode([probs], SAME, (32, 32)).quality
    assert q is not None and (q.label, q.ok) == ("dark", False)


def test_a_deployments_operating_point_overrides_the_manifest_through_loaded_model(
    tiny_classifier: Callable[..., Path],
) -> None:
    folder = tiny_classifier(labels=("dark", "mid", "bright"))
    frame = np.full((40, 60, 3), 250, np.uint8)
    bright = LoadedModel(folder).infer(frame).quality
    assert bright is not None and bright.label == "bright" and not bright.ok
    strict = LoadedModel(folder, fault_min_confidence=1.0).infer(frame).quality
    assert strict is not None and strict.ok and strict.label == "dark"  # the ok label
    assert strict.probabilities["bright"] == pytest.approx(bright.probabilities["bright"])
    assert LoadedModel(folder).manifest.thresholds.fault_min_confidence == 0.0
