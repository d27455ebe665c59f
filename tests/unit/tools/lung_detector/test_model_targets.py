"""The detector's output layout, cell assignment and losses (needs torch)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed (tools extra)"
)


def test_output_is_the_runtime_yolo_layout_with_boxes_at_their_cells() -> None:
    import torch

    from tools.lung_detector.model import STRIDE, Detector, decode

    model = Detector(4).eval()
    out = model(torch.zeros(1, 1, 256, 256))
    assert tuple(out.shape) == (1, 8, (256 // STRIDE) ** 2)
    raw = torch.zeros(1, 8, 2, 3)  # zero offsets and log sizes: a stride-sized box at each cell centre
    boxes = decode(raw)[0, :4].T.numpy()
    assert boxes[:, 0].tolist() == [4, 12, 20, 4, 12, 20]
    assert boxes[:, 1].tolist() == [4, 4, 4, 12, 12, 12]
    assert np.allclose(boxes[:, 2:], STRIDE)
    assert np.allclose(decode(raw)[0, 4:].numpy(), 0.5)


def test_thin_boxes_own_cells_and_the_smaller_box_wins() -> None:
    from tools.lung_detector.targets import assign

    pleura = (40.0, 100.0, 200.0, 104.0)  # 4 px high
    b_line = (100.0, 60.0, 108.0, 220.0)  # 8 px wide, crosses the pleura
    cls_t, box_t, pos = assign(np.array([pleura, b_line], np.float32), np.array([1, 0]), (32, 32), 4)
    assert cls_t[1].sum() > 0 and cls_t[0].sum() > 0
    assert (cls_t.sum(axis=0)[pos] == 1).all(), "each positive cell answers for one class"
    centre_cell = (140 // 8) * 32 + 104 // 8  # centre of the B-line
    assert cls_t[0, centre_cell] == 1 and box_t[centre_cell].tolist() == list(b_line)
    crossing = (102 // 8) * 32 + 104 // 8  # on both boxes: the pleura (smaller area) wins
    assert cls_t[1, crossing] == 1
    assert not pos[0], "a far corner is background"


def test_losses_fall_when_the_model_fits_one_batch() -> None:
    import torch

    from tools.lung_detector.model import Detector
    from tools.lung_detector.targets import batch_targets, detection_loss

    torch.manual_seed(0)
    model = Detector(2)
    x = torch.randn(2, 1, 64, 64)
    boxes = [np.array([[10, 10, 30, 50]], np.float32), np.zeros((0, 4), np.float32)]
    classes = [np.array([1]), np.zeros(0, np.int64)]
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = last = 0.0
    for step in range(40):
        raw = model.raw(x)
        cls_t, box_t, pos = batch_targets(boxes, classes, (raw.shape[2], raw.shape[3]), 2)
        loss, _ = detection_loss(raw, cls_t, box_t, pos)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss) if step == 0 else first
        last = float(loss)
    assert last < 0.5 * first
