"""Presets and findings: counts and brightness of B-lines, dark fluid, shadows, consolidation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from firmware_bridge.phantom import Box, ProbeGeometry, Truth, frames, scan_converter, single


def one(
    preset: str = "lung", events: tuple[str, ...] = (), seed: int = 0, **kw: object
) -> tuple[np.ndarray, Truth]:
    return next(iter(frames(single(preset, events, duration_s=1 / 30, **kw), fps=30, seed=seed)))


def mean_in(img: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> float:
    return float(img[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1].mean())


def shrink(b: Box, f: float) -> tuple[float, float, float, float]:
    """The central part of a box (a fraction ``f`` of its width and height)."""
    x0, y0, x1, y1 = b.px
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * f / 2, (y1 - y0) * f / 2
    return cx - hw, cy - hh, cx + hw, cy + hh


@pytest.mark.parametrize("count", [0, 1, 3, 5, 8])
def test_b_line_count_in_truth_is_the_requested_count(count: int) -> None:
    _, truth = one("lung", b_line_count=count, seed=count)
    assert truth.count("b_line") == count
    assert truth.params["b_line_count"] == count


@pytest.mark.parametrize("count", [1, 2, 3])
def test_each_b_line_is_brighter_than_its_neighbouring_columns(count: int) -> None:
    img, truth = one("lung", b_line_count=count, probe="linear", seed=count)
    lines = [b for b in truth.boxes if b.label == "b_line"]
    assert len(lines) == count
    pleura_bottom = max(b.px[3] for b in truth.boxes if b.label == "pleural_line")
    for b in lines:
        x0, _, x1, y1 = b.px
        w = x1 - x0
        y0 = pleura_bottom + 8
        inside = mean_in(img, x0, y0, x1, y1)
        left = mean_in(img, x0 - 2 - w / 2, y0, x0 - 2, y1)
        right = mean_in(img, x1 + 2, y0, x1 + 2 + w / 2, y1)
        assert inside > 1.3 * max(left, right), (inside, left, right)


def test_b_lines_on_a_convex_probe_are_rays_to_the_bottom() -> None:
    _, truth = one("lung", b_line_count=3)
    depth_px = truth.geometry["depth_mm"] / truth.geometry["pixel_spacing_mm"]
    for b in (b for b in truth.boxes if b.label == "b_line"):
        assert b.px[3] - b.px[1] > 0.6 * depth_px  # from the pleura to the bottom of the image


def test_normal_lung_has_a_bright_pleural_line_and_no_b_lines() -> None:
    img, truth = one("lung")
    assert truth.count("b_line") == 0 and truth.count("pleural_line") == 1
    (p,) = [b for b in truth.boxes if b.label == "pleural_line"]
    cx0, _, cx1, _ = shrink(p, 0.6)
    pleura = img[int(p.px[1]) : int(p.px[3]) + 1, int(cx0) : int(cx1)].max(axis=0).mean()
    assert pleura > 200
    assert mean_in(img, cx0, p.px[3] + 5, cx1, p.px[3] + 40) < 0.6 * pleura


def test_effusion_is_darker_than_surrounding_tissue() -> None:
    img, truth = one("lung", effusion=True, seed=2)
    (e,) = [b for b in truth.boxes if b.label == "effusion"]
    x0, y0, x1, y1 = shrink(e, 0.4)
    fluid = mean_in(img, x0, y0, x1, y1)
    wall = mean_in(img, x0, 10, x1, e.px[1] - 8)  # soft tissue above the pleura
    assert fluid < 0.25 * wall and fluid < 15


def test_free_fluid_and_bladder_are_anechoic() -> None:
    _, truth = one("abdomen", free_fluid=True, seed=1)
    assert truth.count("free_fluid") == 1
    img_b, truth_b = one("bladder", seed=1)
    (bl,) = [b for b in truth_b.boxes if b.label == "bladder"]
    inside = mean_in(img_b, *shrink(bl, 0.5))
    x0, _, x1, _ = shrink(bl, 0.5)
    behind = mean_in(img_b, x0, bl.px[3] + 10, x1, bl.px[3] + 40)
    assert inside < 10 and behind > 80  # bright back wall and posterior enhancement below


def test_consolidation_is_tissue_like_below_the_pleura() -> None:
    img, truth = one("lung", consolidation=True, seed=4)
    normal, _ = one("lung", seed=4)
    (c,) = [b for b in truth.boxes if b.label == "consolidation"]
    box = shrink(c, 0.5)
    assert mean_in(img, *box) > mean_in(normal, *box) + 15


@pytest.mark.parametrize("event", ["rib_shadow", "partial_contact"])
def test_shadow_fraction_matches_the_dark_fraction_of_the_sector(event: str) -> None:
    img, truth = one("abdomen", (event,), seed=5, shadow_from=0.0, shadow_to=0.55)
    normal, t_normal = one("abdomen", seed=5)
    sc = scan_converter(ProbeGeometry(depth_mm=150.0))
    inside = sc.mask.astype(bool)
    # Dark: the local echo level is well below the same pixel's level without the event.
    local = cv2.blur(img.astype(np.float32), (15, 15))
    local_n = cv2.blur(normal.astype(np.float32), (15, 15))
    dark = float(np.count_nonzero((local < 0.5 * local_n) & inside)) / inside.sum()
    assert t_normal.shadow_fraction == 0.0
    assert 0.3 < truth.shadow_fraction < 0.7
    assert abs(dark - truth.shadow_fraction) < 0.08, (dark, truth.shadow_fraction)


def test_motion_blur_smooths_speckle() -> None:
    sharp, _ = one("abdomen", seed=6)
    blurred, truth = one("abdomen", ("motion_blur",), seed=6, motion_mm_s=20.0)
    inside = scan_converter(ProbeGeometry(depth_mm=150.0)).mask.astype(bool)
    hp = [
        np.abs(i.astype(np.float32) - cv2.blur(i.astype(np.float32), (7, 7)))[inside].mean()
        for i in (sharp, blurred)
    ]
    assert hp[1] < 0.8 * hp[0]
    assert "motion_blur" in truth.events


def test_the_lung_tour_visits_the_findings_in_turn() -> None:
    from firmware_bridge.phantom import frames, tour

    sc = tour("lung")
    assert sc.duration_s == 48.0
    seen = []
    for seg in sc.segments:  # the first frame of each stop
        one = type(sc)((type(seg)(0.0, 0.1, seg.preset, seg.events, seg.params, motion_mm_s=1.0),))
        _, truth = next(frames(one, 10.0, seed=0))
        seen.append((truth.count("b_line"), truth.count("consolidation"), truth.count("effusion")))
    assert [s[0] for s in seen] == [0, 2, 4, 6, 1, 0]
    assert seen[4][1] == 1 and seen[5][2] == 1
    assert tour("bladder").segments[0].params == {}, "a preset without a tour stays steady"
