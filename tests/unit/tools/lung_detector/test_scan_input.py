"""Training inputs from phantom scenes: the scan-line view and the phantom's boxes mapped into it."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge.phantom.scenario import Scenario, Segment, frames
from tools.lung_detector.recipe import Recipe
from tools.lung_detector.scan_input import ScanInput


def _scene(probe: str, n_b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seg = Segment(
        0.0,
        0.11,
        "lung",
        (),
        params={"b_line_count": n_b},
        probe=probe,
        depth_mm=120.0 if probe == "convex" else 50.0,
    )
    image, truth = next(iter(frames(Scenario((seg,)), 10.0, 3)))
    boxes = np.array([b.px for b in truth.boxes if b.label == "b_line"], np.float32).reshape(-1, 4)
    return image, boxes, np.ones(len(boxes), bool)


@pytest.mark.parametrize("probe", ["convex", "linear"])
def test_b_lines_become_narrow_columns_on_the_bright_columns_of_the_scan(probe: str) -> None:
    image, boxes, thin = _scene(probe, 3)
    scan = ScanInput([image], Recipe().input_spec())
    img = scan(image)
    assert img.shape == (128, 128) and scan.sector.kind == probe
    got = scan.boxes_to_input(boxes, thin)
    assert len(got) == 3
    assert np.all(got[:, 2] - got[:, 0] <= 4.5)  # vertical, one line wide
    assert np.all(got[:, 3] - got[:, 1] > 40)  # from the pleura far down
    deep = img[90:120].astype(np.float32).mean(0)
    for x0, _, x1, _ in got:  # each box sits on a column brighter than the field around it
        c = round(float(x0 + x1) / 2)
        assert deep[c - 1 : c + 2].max() > np.median(deep) + 10
