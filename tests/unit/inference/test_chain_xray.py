"""The chain on real chest films with real (tiny) ONNX X-ray models: exposure, positioning from the lung
detector's boxes, the finding with its heatmap and review flag, the X-ray priority, and the overlay."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import ModelConfig
from edge.errors import ManifestError, ModelError
from edge.inference.chain import ModelChain, ModelSlot
from edge.inference.manifest import load_manifest
from edge.inference.model import LoadedModel
from edge.render.overlay import compose
from edge.results import PRIORITY_FINDING, PRIORITY_NONE, PRIORITY_URGENT
from edge.settings.xray import XraySettings
from tests.support.xray import chest_cr, film_dicom, frame_of, radiologist_boxes
from tests.support.xray_models import finding_folder, lungs_folder

CONFIDENT_PNEUMONIA = (0.0, 3.0)
CONFIDENT_NORMAL = (3.0, 0.0)
UNSURE = (0.0, 0.0)  # softmax of the film's mean brightness either way: under 0.8


def chain_for(tmp_path: Path, film: str, bias: tuple[float, float], lungs: bool = True) -> ModelChain:
    slots = []
    if lungs:
        hw = (512, 464) if film == "good" else (512, 512)
        folder = lungs_folder(tmp_path / "cxr-lungs", radiologist_boxes(film), hw)
        slots.append(ModelSlot(LoadedModel(folder, backend="onnxruntime"), ModelConfig(name="cxr-lungs")))
    folder = finding_folder(tmp_path / "cxr-finding", bias)
    slots.append(ModelSlot(LoadedModel(folder, backend="onnxruntime"), ModelConfig(name="cxr-finding")))
    return ModelChain(slots, xray=XraySettings())


def test_a_cut_off_underexposed_film_with_a_finding_is_urgent_and_says_why(tmp_path: Path) -> None:
    frame = frame_of(film_dicom(tmp_path / "f.dcm", "cut_off", ExposureIndex=100, TargetExposureIndex=250))
    result = chain_for(tmp_path, "cut_off", CONFIDENT_PNEUMONIA).run(frame).result
    assert result.modality == "DX" and not result.no_model
    assert result.exposure is not None and result.exposure.band == "under_far" and result.exposure.repeat
    assert result.positioning is not None and len(result.positioning.messages) == 2
    assert all(m.startswith("consider repeat: ") and "cut off" in m for m in result.positioning.messages)
    labels = sorted(f.label for f in result.findings)
    assert labels == ["lung_left", "lung_right", "pneumonia"]
    pneumonia = next(f for f in result.findings if f.label == "pneumonia")
    assert pneumonia.box is None and not pneumonia.needs_review and pneumonia.confidence > 0.9
    assert result.priority == PRIORITY_URGENT
    d = result.to_dict()
    assert d["schema_version"] == 4 and d["exposure"]["repeat"] and d["positioning"]["repeat"]
    assert d["heatmap"]["label"] == "pneumonia" and len(d["heatmap"]["values"]) == 4


def test_the_heatmap_is_the_pneumonia_map_over_the_whole_film_hot_where_the_model_looked(
    tmp_path: Path,
) -> None:
    frame = frame_of(film_dicom(tmp_path / "f.dcm", "pneumonia"))
    heat = chain_for(tmp_path, "pneumonia", CONFIDENT_PNEUMONIA, lungs=False).run(frame).result.heatmap
    assert heat is not None and heat.label == "pneumonia" and heat.values.shape == (4, 4)
    assert (heat.x0, heat.y0, heat.x1, heat.y1) == pytest.approx((0, 0, 512, 512))  # stretched input
    assert heat.values.max() == pytest.approx(1.0) and heat.values.min() >= 0
    # The stand-in's map is block brightness: it must follow the film's own 4x4 brightness.
    gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
    blocks = cv2.resize(gray, (4, 4), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.corrcoef(heat.values.ravel(), blocks.ravel())[0, 1] > 0.95


def test_a_good_film_on_target_called_normal_is_quiet(tmp_path: Path) -> None:
    frame = frame_of(film_dicom(tmp_path / "f.dcm", "good", ExposureIndex=410, TargetExposureIndex=400))
    result = chain_for(tmp_path, "good", CONFIDENT_NORMAL).run(frame).result
    assert result.exposure is not None and result.exposure.band == "within"
    assert result.positioning is not None and result.positioning.messages == ()
    assert result.heatmap is None and all(f.label.startswith("lung_") for f in result.findings)
    assert result.priority == PRIORITY_NONE and not result.needs_review  # lung fields are not findings


def test_an_unsure_finding_is_flagged_for_review_with_the_likeliest_findings_map(tmp_path: Path) -> None:
    frame = frame_of(film_dicom(tmp_path / "f.dcm", "good", ExposureIndex=410, TargetExposureIndex=400))
    result = chain_for(tmp_path, "good", UNSURE).run(frame).result
    unsure = [f for f in result.findings if not f.label.startswith("lung_")]
    assert len(unsure) == 1 and unsure[0].needs_review and unsure[0].confidence < 0.8
    assert result.needs_review and result.priority == PRIORITY_FINDING
    assert result.heatmap is not None and result.heatmap.label == "pneumonia"


def test_a_real_chest_cr_without_a_lung_detector_has_exposure_but_no_positioning(tmp_path: Path) -> None:
    frame = frame_of(chest_cr(tmp_path / "cr.dcm", DeviationIndex=0.3))
    result = chain_for(tmp_path, "pneumonia", CONFIDENT_NORMAL, lungs=False).run(frame).result
    assert result.modality == "CR" and result.positioning is None
    assert (
        result.exposure is not None and result.exposure.di_from == "file" and result.exposure.band == "within"
    )


def test_the_overlay_draws_the_heatmap_and_the_panel_at_full_resolution(tmp_path: Path) -> None:
    frame = frame_of(film_dicom(tmp_path / "f.dcm", "cut_off", ExposureIndex=100, TargetExposureIndex=250))
    result = chain_for(tmp_path, "cut_off", CONFIDENT_PNEUMONIA).run(frame).result
    drawn = compose(frame.image, result, None)
    assert drawn.shape == frame.image.shape  # the film's own size, not the model's
    changed = (drawn != frame.image).any(axis=2)
    assert heat_region_coloured(drawn, frame.image, result) and changed[:60, :200].mean() > 0.05  # panel
    plain = compose(frame.image, None, None)
    assert (plain != drawn).any(axis=2).mean() > 0.2  # the map covers the film


def heat_region_coloured(drawn: np.ndarray, image: np.ndarray, result: object) -> bool:
    """The hottest block of the map is tinted (its colour differs from the gray film there)."""
    heat = result.heatmap  # type: ignore[attr-defined]
    r, c = np.unravel_index(int(heat.values.argmax()), heat.values.shape)
    h, w = image.shape[:2]
    y, x = int((r + 0.5) * h / 4), int((c + 0.5) * w / 4)
    b, g, rr = (int(v) for v in drawn[y, x])
    return max(b, g, rr) - min(b, g, rr) > 40  # gray pixels have b == g == r


def test_an_ultrasound_frame_gets_no_xray_checks(tmp_path: Path) -> None:
    from edge.frames import Frame

    chain = chain_for(tmp_path, "good", CONFIDENT_NORMAL)
    us = Frame(np.zeros((64, 64, 3), np.uint8), 0, 0, "probe", "US")
    result = chain.run(us).result
    assert result.no_model and result.exposure is None and result.positioning is None


def test_a_heatmap_output_needs_a_classifier_after_its_scores_and_one_map_per_label(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match='output of kind "heatmap" needs task "classification"'):
        swapped = [{"name": "heatmap", "kind": "heatmap"}, {"name": "logits", "kind": "logits"}]
        finding_folder(tmp_path / "a", CONFIDENT_NORMAL, outputs=swapped)
        load_manifest(tmp_path / "a")
    with pytest.raises(
        ModelError, match=r"heatmap output 'heatmap' has shape \[1, 3, 4, 4\], not \[1, 2, h, w\]"
    ):
        LoadedModel(finding_folder(tmp_path / "b", CONFIDENT_PNEUMONIA, maps=3), backend="onnxruntime")
