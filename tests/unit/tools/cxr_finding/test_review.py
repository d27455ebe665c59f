"""The review band's shift and the heatmap's region shares."""

from __future__ import annotations

import numpy as np

from tools.cxr_finding.cam import region_masks, shares
from tools.cxr_finding.review import shifted


def test_shifted_probability_is_one_half_at_the_threshold_and_keeps_the_order() -> None:
    p = np.array([0.1, 0.3, 0.7, 0.9])
    q = shifted(p, np.full(4, 0.7))
    assert abs(q[2] - 0.5) < 1e-9 and (np.diff(q) > 0).all()


def test_a_map_in_one_corner_is_all_border_and_corner_mass() -> None:
    maps = np.zeros((1, 100, 100), np.float32)
    maps[0, :5, :5] = 1.0
    s = shares(maps)
    assert s["border band (10%)"]["mass"] == 1.0 and s["corners (20% squares)"]["mass"] == 1.0
    assert abs(s["border band (10%)"]["area"] - (1 - 0.8**2)) < 1e-6


def test_lung_share_counts_mass_inside_the_boxes() -> None:
    maps = np.zeros((1, 100, 100), np.float32)
    maps[0, 40:60, 20:40] = 1.0
    maps[0, 40:60, 60:80] = 1.0
    boxes = [np.array([[10, 20, 45, 80], [55, 20, 90, 80]], np.float32)]
    s = shares(maps, boxes)
    assert (
        s["lung fields (both boxed)"]["mass"] == 1.0
        and s["lung fields (both boxed)"]["films_with_both_fields"] == 1
    )
    assert region_masks(100, 100)["corners (20% squares)"].sum() == 4 * 20 * 20
