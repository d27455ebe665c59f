"""The published X-ray models, loaded by the runtime, on a real chest CR (pydicom-data RG1_UNCR.dcm
through the runtime's own DICOM source): both lung fields boxed on the right sides, and the finding
model's outputs as its manifest says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom.data
import pytest

from edge.inference.manifest import verify_folder
from edge.inference.model import LoadedModel
from edge.sources.registry import open_source

MODELS = Path(__file__).resolve().parents[4] / "models"


@pytest.fixture(scope="module")
def chest_cr() -> np.ndarray:
    source = open_source(f"dicom://{pydicom.data.get_testdata_file('RG1_UNCR.dcm')}")
    source.open()
    try:
        frame = source.read(timeout=10)
    finally:
        source.close()
    assert frame is not None and frame.modality == "CR"
    return frame.image


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_lung_fields_are_boxed_on_their_sides(chest_cr: np.ndarray, precision: str) -> None:
    assert set(verify_folder(MODELS / "cxr-lungs")) == {"fp32", "int8", "int8-cpu"}
    model = LoadedModel(MODELS / "cxr-lungs", precision=precision, backend="onnxruntime", warmup_runs=0)
    found = {f.label: f for f in model.infer(chest_cr).findings}
    assert set(found) == {"lung_right", "lung_left"}
    h, w = chest_cr.shape[:2]
    right, left = found["lung_right"].box, found["lung_left"].box
    assert right is not None and left is not None
    assert (right.x0 + right.x1) / 2 < w / 2 < (left.x0 + left.x1) / 2, (
        "the patient's right is the image left"
    )
    for b in (right, left):
        assert b.x1 - b.x0 > 0.25 * w and b.y1 - b.y0 > 0.4 * h, "a lung field, not a patch"


def test_finding_model_gives_probabilities_and_a_heatmap_over_the_film(chest_cr: np.ndarray) -> None:
    assert set(verify_folder(MODELS / "cxr-finding")) == {"fp32", "int8", "int8-cpu"}
    model = LoadedModel(MODELS / "cxr-finding", backend="onnxruntime", warmup_runs=0)
    out = model.infer(chest_cr)
    assert out.quality is not None and set(out.quality.probabilities) == {"normal", "pneumonia"}
    assert abs(sum(out.quality.probabilities.values()) - 1.0) < 1e-5
    if out.heatmap is not None:  # a confident "normal" carries none
        assert np.asarray(out.heatmap.values).shape == (7, 7)
        h, w = chest_cr.shape[:2]
        assert (out.heatmap.x0, out.heatmap.y0, out.heatmap.x1, out.heatmap.y1) == pytest.approx(
            (0, 0, w, h), abs=1
        )
