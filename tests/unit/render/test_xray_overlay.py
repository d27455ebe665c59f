"""The X-ray overlay on its own: the heatmap blended over its rectangle only (also one overhanging the
image, as a letterboxed input's does), and the panel's lines and colours for what the checks said."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.render.overlay import HudState, _hud_items, compose, no_model_text
from edge.render.style import DEFAULT_STYLE
from edge.render.xray_overlay import _lines, draw_heatmap, draw_xray_panel
from edge.results import Box, Finding, Quality, Result, StageTimes, new_result_id
from edge.xray_qa import NO_EXPOSURE_INDEX, Exposure, Heatmap, PositionCheck, Positioning

S = DEFAULT_STYLE


def film() -> np.ndarray:
    return np.full((200, 300, 3), 120, np.uint8)


def xray(**fields: object) -> Result:
    r = Result(new_result_id(), 0, 0.0, "dicom://", "DX", None, (), (), StageTimes(0, 0, 0, 0, 0))
    return replace(r, **fields)  # type: ignore[arg-type]


def test_the_heatmap_tints_its_rectangle_hot_spot_most_and_nothing_outside() -> None:
    values = np.zeros((4, 4), np.float32)
    values[1, 2] = 1.0
    img = film()
    draw_heatmap(img, Heatmap("pneumonia", values, 100, 0, 300, 200))
    tinted = (img != 120).any(axis=2)
    assert not tinted[:, :100].any(), "left of the rectangle untouched"
    y, x = 75, 100 + 125  # the hot cell's centre (row 1, column 2 of 4 over 200 x 200)
    assert tinted[y, x] and not tinted[190, 110], "hot spot tinted, cold corner not"


def test_a_rectangle_overhanging_the_image_is_cut_to_it() -> None:
    values = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    img = film()
    draw_heatmap(img, Heatmap("pneumonia", values, -100, -50, 400, 250))
    assert img.shape == (200, 300, 3) and (img != 120).any()
    same = film()
    draw_heatmap(same, Heatmap("x", values, 0, 0, float("nan"), 10))
    draw_heatmap(same, Heatmap("x", values, 400, 300, 500, 400))  # wholly outside
    assert (same == 120).all()


def test_the_panel_says_what_the_checks_said_in_their_colours() -> None:
    on = Exposure(400.0, 400.0, 0.0, "computed", "file", "within", "exposure on target (DI +0.0)")
    rep = Exposure(100.0, 250.0, -4.0, "computed", "file", "under_far", "consider repeat: underexposed", True)
    none = Exposure(None, None, None, None, None, None, NO_EXPOSURE_INDEX)
    cut = Positioning(
        (PositionCheck("lung_left_cut_off", False),), ("consider repeat: left lung field cut off",)
    )
    q = Quality("pneumonia", 0.62, False, {})
    unsure = Finding("pneumonia", 0.62, None, needs_review=True, class_id=1)
    lines = _lines(xray(quality=q, findings=(unsure,), exposure=rep, positioning=cut), S)
    assert lines == [
        ("review: pneumonia 62%", S.review_color),
        ("consider repeat: underexposed", S.bad_color),
        ("consider repeat: left lung field cut off", S.bad_color),
    ]
    assert _lines(xray(exposure=on, positioning=Positioning()), S) == [
        ("exposure on target (DI +0.0)", S.ok_color),
        ("positioning: lung fields in the field, symmetric", S.ok_color),
    ]
    skipped = Positioning(skipped="not a chest image (BodyPartExamined HAND)")
    assert _lines(xray(exposure=none, positioning=skipped), S)[0] == (NO_EXPOSURE_INDEX, S.none_color)
    assert _lines(xray(exposure=none, positioning=skipped), S)[1][1] == S.none_color


def test_the_panel_wraps_long_lines_and_says_nothing_when_there_is_nothing() -> None:
    img = film()
    assert draw_xray_panel(img, xray(), top=7) == 7 and (img == 120).all()
    long = Exposure(None, None, 1.8, "file", None, "over", "overexposed (DI +1.8): check the technique; "
                    "DI from the file (no exposure index in it)")  # fmt: skip
    bottom = draw_xray_panel(img, xray(exposure=long))
    assert bottom > 40, "wrapped onto several lines on a 300 px image"


@pytest.mark.parametrize("no_model", [True, False])
def test_compose_shows_the_exposure_also_under_the_no_model_banner(no_model: bool) -> None:
    exposure = Exposure(None, None, None, None, None, None, NO_EXPOSURE_INDEX)
    drawn = compose(film(), xray(exposure=exposure, no_model=no_model), None)
    assert (drawn != 120).any(axis=2)[:, :150].mean() > 0.02
    assert no_model_text("DX") == "no model for DX: shown without AI"


def test_an_x_ray_gets_no_ultrasound_counter() -> None:
    """The B-line counter belongs to the ultrasound detector: the same compose on an ultrasound
    result draws it in the top-right corner, on an X-ray nothing is drawn there."""
    exposure = Exposure(None, None, None, None, None, None, NO_EXPOSURE_INDEX)
    counted = (("b_line", "lung-detector"),)
    on_film = compose(film(), xray(exposure=exposure), None, counted=counted)
    on_us = compose(film(), replace(xray(), modality="US"), None, counted=counted)
    corner = (slice(0, 60), slice(200, 300))
    assert (on_film[corner] == 120).all()
    assert (on_us[corner] != 120).any()


def test_a_lung_box_label_under_the_panel_hangs_inside_its_box_instead() -> None:
    """On a film the panel sits top-left, where the right lung's box label would go: the label
    moves below the box's top edge, so both can be read."""
    exposure = Exposure(None, None, None, None, None, None, NO_EXPOSURE_INDEX)
    result = xray(exposure=exposure, positioning=Positioning())
    img = film()
    bottom = draw_xray_panel(img.copy(), result)
    lung = Finding("lung_right", 0.77, Box(20, bottom - 6, 140, 190), class_id=0)
    drawn = compose(img, replace(result, findings=(lung,)), None)
    fill = np.array(S.class_colors[0])
    label_rows = np.flatnonzero((np.abs(drawn[:, 22:40].astype(int) - fill).sum(axis=2) < 30).any(axis=1))
    box_top = bottom - 6
    assert label_rows.size and label_rows.min() >= bottom, (
        f"label rows {label_rows.min()}-, panel to {bottom}"
    )
    assert label_rows.min() < box_top + 60, "still at the box's top"


def test_the_hud_counts_films_on_a_still_instead_of_frame_rates() -> None:
    items = _hud_items(HudState(0.0, 0.0, latency_ms=5.0, films=3))
    assert items[:2] == ["film 3", "latency 5 ms"] and not any("fps" in i or "skipped" in i for i in items)
    live = _hud_items(HudState(30.0, 30.0, latency_ms=5.0))
    assert live[:2] == ["src 30.0 fps", "AI 30.0 fps"] and "skipped 0" in live
