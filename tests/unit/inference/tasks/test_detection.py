"""Detection task: YOLO decode and NMS on known tensors, and a tiny YOLO-layout ONNX model end to end."""

from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError
from edge.inference.manifest import Manifest
from edge.inference.model import LoadedModel
from edge.inference.preprocess import Transform
from edge.inference.tasks.detection import DetectionTask, batched_nms, decode_yolo, nms
from tests.support.onnx_models import write_model_folder, yolo_model

# Seven candidates (columns), two classes. cx, cy, w, h, score_a, score_b.
CANDIDATES = np.array(
    [
        [32, 32, 16, 16, 0.90, 0.05],  # 0: class a, best
        [33, 32, 16, 16, 0.80, 0.05],  # 1: class a, overlaps 0 heavily -> suppressed
        [32, 32, 16, 16, 0.05, 0.70],  # 2: class b, same place as 0 -> kept (other class)
        [10, 10, 8, 8, 0.40, 0.10],  # 3: class a, alone, under review threshold
        [50, 50, 8, 8, 0.10, 0.20],  # 4: below min_confidence 0.25 -> dropped
        [10, 11, 8, 8, 0.35, 0.02],  # 5: overlaps 3 (IoU 0.78) -> suppressed
        [60, 5, 4, 4, 0.01, 0.01],  # 6: background
    ],
    np.float32,
).T[None]  # -> [1, 6, 7] as [1, 4+C, N]


def test_decode_reads_the_ultralytics_layout() -> None:
    boxes, scores, ids = decode_yolo(CANDIDATES, num_classes=2, min_confidence=0.25)
    assert len(boxes) == 5  # candidate 4 dropped
    np.testing.assert_allclose(boxes[0], [24, 24, 40, 40])
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7, 0.4, 0.35], rtol=1e-6)
    assert ids.tolist() == [0, 0, 1, 0, 0]


def test_decode_accepts_the_transposed_layout() -> None:
    a = decode_yolo(CANDIDATES, 2, 0.25)
    b = decode_yolo(np.ascontiguousarray(CANDIDATES.transpose(0, 2, 1)), 2, 0.25)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_decode_rejects_a_wrong_shape() -> None:
    with pytest.raises(ModelError, match=r"not YOLO layout \[1, 4\+C, N\] with C=3"):
        decode_yolo(np.zeros((1, 6, 10), np.float32), num_classes=3, min_confidence=0.1)


def test_nms_and_class_aware_nms() -> None:
    boxes, scores, ids = decode_yolo(CANDIDATES, 2, 0.25)
    keep = batched_nms(boxes, scores, ids, iou_threshold=0.45)
    assert sorted(keep.tolist()) == [0, 2, 3]
    # Class-blind NMS would let candidate 0 suppress candidate 2.
    assert sorted(nms(boxes, scores, 0.45).tolist()) == [0, 3]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0


def test_tiny_yolo_model_end_to_end(tmp_path: Path) -> None:
    folder = write_model_folder(
        tmp_path / "tiny-yolo",
        yolo_model(CANDIDATES, size=64),
        {
            "name": "tiny-yolo",
            "task": "detection",
            "input": {"name": "images", "shape": [1, 3, 64, 64], "color": "rgb", "resize": "letterbox"},
            "outputs": [{"name": "output0", "kind": "yolo"}],
            "labels": ["b_line", "pleura"],
            "urgent_labels": ["pleura"],
            "thresholds": {"min_confidence": 0.25, "review_below": 0.5, "iou": 0.45},
        },
    )
    model = LoadedModel(folder)
    assert model.info.provider == "CPUExecutionProvider"
    # A 128x64 frame letterboxes to 64x32 with 16 px of padding above and below.
    out = model.infer(np.full((64, 128, 3), 80, np.uint8))
    assert out.quality is None
    found = sorted(out.findings, key=lambda f: -f.confidence)
    assert [(f.label, f.needs_review) for f in found] == [
        ("b_line", False),
        ("pleura", False),
        ("b_line", True),
    ]
    b = found[0].box
    assert b is not None
    np.testing.assert_allclose([b.x0, b.y0, b.x1, b.y1], [48, 16, 80, 48], atol=1e-4)
    assert out.t_model_end_ns >= out.t_model_start_ns


def _manifest(**thresholds: float) -> Manifest:
    return Manifest.model_validate(
        {
            "name": "det",
            "version": "1",
            "task": "detection",
            "input": {"name": "images", "shape": [1, 3, 64, 64], "color": "rgb", "resize": "letterbox"},
            "outputs": [{"name": "output0", "kind": "yolo"}],
            "labels": ["b_line", "pleura"],
            "thresholds": {"min_confidence": 0.25, "review_below": 0.5, "iou": 0.45, **thresholds},
            "files": {"fp32": {"path": "m.onnx", "sha256": "0" * 64}},
        }
    )


def test_task_maps_boxes_to_the_frame_and_clips_them() -> None:
    task = DetectionTask(_manifest())
    # Input pixels -> frame pixels at half scale with 4 px of padding on x, on a 60x50 frame.
    out = task.decode([CANDIDATES], Transform(0.5, 0.5, 4.0, 0.0), frame_hw=(50, 60))
    assert out.quality is None and out.masks is None
    best = max(out.findings, key=lambda f: f.confidence)
    assert best.box is not None
    np.testing.assert_allclose([best.box.x0, best.box.y0, best.box.x1, best.box.y1], [40, 48, 60, 50])
    assert all(f.box is not None and f.box.x1 <= 60 and f.box.y1 <= 50 for f in out.findings)


def test_task_keeps_at_most_max_detections_best_first() -> None:
    out = DetectionTask(_manifest(max_detections=1)).decode([CANDIDATES], Transform(1, 1, 0, 0), (64, 64))
    assert [(f.label, round(f.confidence, 2), f.class_id) for f in out.findings] == [("b_line", 0.9, 0)]


def test_task_prepares_through_the_manifests_preprocessing() -> None:
    tensor, transform = DetectionTask(_manifest()).prepare(np.full((64, 128, 3), 80, np.uint8))
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert (transform.scale_x, transform.pad_y) == (0.5, 16.0)


def _lung_screen() -> np.ndarray:
    """A linear lung image on a black screen (128 columns of tissue from x=16): soft tissue, a
    pleural line at row 30, normal lung fading below it, and three B-lines at columns 40, 80, 112."""
    rng = np.random.default_rng(5)
    img = np.zeros((140, 160), np.uint8)
    area = np.full((128, 128), 40.0)
    area[:30] = 70
    area[29:32] = 200
    area[32:] = (60 * np.exp(-np.arange(96) / 25.0) + 15)[:, None]
    for c in (24, 64, 96):  # columns inside the imaging area
        area[31:, c : c + 3] = 150
    img[6:134, 16:144] = np.clip(area + rng.normal(0, 4, area.shape), 0, 255).astype(np.uint8)
    return img


def test_the_consensus_stage_adds_the_b_lines_the_model_did_not_box(tmp_path: Path) -> None:
    # The model boxes one B-line (input column 24-28 of the 128-wide scan-line view) and nothing else.
    out = np.zeros((1, 6, 2), np.float32)
    out[0, :, 0] = [25.5, 80, 6, 96, 0.9, 0.0]
    manifest = {
        "name": "scan-yolo",
        "task": "detection",
        "input": {"name": "images", "shape": [1, 1, 128, 128], "color": "gray", "view": "scanlines"},
        "outputs": [{"name": "output0", "kind": "yolo"}],
        "labels": ["b_line", "pleural_line"],
        "thresholds": {"min_confidence": 0.25, "review_below": 0.5, "iou": 0.45},
    }
    screen = _lung_screen()
    model = yolo_model(out, 128, 1)
    plain = LoadedModel(write_model_folder(tmp_path / "plain", model, manifest), warmup_runs=0)
    assert [f.label for f in plain.infer(screen).findings] == ["b_line"]
    manifest |= {"postprocess": ["consensus_b_lines"]}
    both = LoadedModel(write_model_folder(tmp_path / "both", model, manifest), warmup_runs=0)
    found = both.infer(screen).findings
    assert [f.label for f in found] == ["b_line"] * 3, "the model's one and the two it missed"
    centres = sorted((f.box.x0 + f.box.x1) / 2 for f in found if f.box is not None)
    np.testing.assert_allclose(centres, [16 + 25.5, 16 + 65.5, 16 + 97.5], atol=2.5)  # frame pixels
    assert all(not f.needs_review for f in found)


def test_the_consensus_stage_needs_a_scan_line_detector() -> None:
    from pydantic import ValidationError

    base = _manifest().model_dump()
    with pytest.raises(ValidationError, match="consensus_b_lines"):
        Manifest.model_validate(base | {"postprocess": ["consensus_b_lines"]})
