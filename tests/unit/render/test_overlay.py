"""Overlay drawing, checked on pixels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.render.overlay import (
    DEFAULT_STYLE,
    HudState,
    compose,
    draw_banner,
    draw_findings,
    draw_hud,
    draw_quality_meter,
    no_model_text,
    quality_words,
)
from edge.results import Box, Finding, Quality, Result, StageTimes, new_result_id

BG = 60  # a uniform mid-dark background: every drawn pixel differs from it


def blank(h: int = 256, w: int = 256, level: int = BG) -> np.ndarray:
    return np.full((h, w, 3), level, np.uint8)


def changed(img: np.ndarray, level: int = BG) -> np.ndarray:
    return np.any(img != level, axis=2)


def dominant(img: np.ndarray, channel: int, by: int = 80) -> np.ndarray:
    """Pixels where one BGR channel beats both others by ``by``."""
    x = img.astype(np.int16)
    others = [c for c in range(3) if c != channel]
    return (x[..., channel] > x[..., others[0]] + by) & (x[..., channel] > x[..., others[1]] + by)


GREEN, RED = 1, 2


def q(label: str = "diagnostic", score: float = 0.9, ok: bool = True) -> Quality:
    return Quality(label, score, ok, {label: score})


def make_result(
    findings: tuple[Finding, ...] = (), gated: bool = False, quality: Quality | None = None
) -> Result:
    return Result(new_result_id(), 1, 0.0, "test", "US", quality or q(), findings, (),
                  StageTimes(0, 0, 0, 0, 0), gated)  # fmt: skip


# --- quality meter -------------------------------------------------------------------------------
def test_meter_green_when_ok_red_when_not() -> None:
    ok = draw_quality_meter(blank(), q(score=0.95, ok=True))
    assert dominant(ok, GREEN).sum() > 50 and dominant(ok, RED).sum() == 0
    bad = draw_quality_meter(blank(), q("no_contact", 0.95, ok=False))
    assert dominant(bad, RED).sum() > 50 and dominant(bad, GREEN).sum() == 0


def test_meter_amber_when_borderline() -> None:
    img = draw_quality_meter(blank(), q(score=DEFAULT_STYLE.borderline_score - 0.1, ok=True))
    x = img.astype(np.int16)
    amber = (x[..., 2] > 200) & (x[..., 1] > 120) & (x[..., 0] < 60)
    assert amber.sum() > 30
    assert dominant(img, GREEN).sum() == 0


def test_meter_in_top_left_corner() -> None:
    img = draw_quality_meter(blank(), q())
    ys, xs = np.nonzero(changed(img))
    assert ys.max() < 256 // 3 and xs.min() < 20
    assert not changed(img)[256 // 2 :, :].any()


def saturated(img: np.ndarray) -> np.ndarray:
    """Strongly coloured pixels (green, amber or red bar; not grey backdrop, track or white text)."""
    x = img.astype(np.int16)
    return (x.max(axis=2) - x.min(axis=2)) > 80


@pytest.mark.parametrize("ok", [True, False])
def test_bar_length_grows_with_score(ok: bool) -> None:
    lengths = []
    for score in (0.1, 0.4, 0.75, 1.0):
        img = draw_quality_meter(blank(), q(score=score, ok=ok))
        xs = np.nonzero(saturated(img).any(axis=0))[0]
        lengths.append(xs.max() - xs.min() + 1)
    assert lengths == sorted(lengths) and len(set(lengths)) == 4
    assert lengths[0] / lengths[-1] == pytest.approx(0.1, abs=0.03)  # proportional


def test_meter_none_is_grey_and_readable_on_white() -> None:
    img = draw_quality_meter(blank(level=255), None)
    region = changed(img, 255)
    assert region.sum() > 200  # backdrop and "quality: --"
    assert dominant(img, GREEN).sum() == 0 and dominant(img, RED).sum() == 0
    ys, xs = np.nonzero(region)
    assert img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].mean() < 128  # darkened under the text


def test_quality_words() -> None:
    assert quality_words("no_contact") == "no contact"
    assert quality_words("shadow") == "shadow / poor coupling"
    assert quality_words("gain_high") == "gain too high"
    assert quality_words("some_new_label") == "some new label"


# --- findings ------------------------------------------------------------------------------------
def test_confident_box_solid_review_box_dashed_and_distinct() -> None:
    confident = Finding("b_line", 0.9, Box(40, 60, 120, 140), False, 0)
    review = Finding("effusion", 0.3, Box(140, 60, 230, 140), True, 0)
    img = draw_findings(blank(), [confident, review])
    class_color = np.array(DEFAULT_STYLE.class_colors[0], np.uint8)
    review_color = np.array(DEFAULT_STYLE.review_color, np.uint8)
    assert not np.array_equal(class_color, review_color)
    solid_edge = img[140, 40:121]  # bottom edge: the label sits at the top
    assert (solid_edge == class_color).all(axis=1).all()
    dashed_edge = img[140, 140:231]
    on = (dashed_edge == review_color).all(axis=1)
    off = (dashed_edge == BG).all(axis=1)
    assert on.sum() > 20 and off.sum() > 20  # dashes and gaps
    left_edge = img[70:135, 140]
    assert (left_edge == BG).all(axis=1).any() and (left_edge == review_color).all(axis=1).any()
    assert not (img[90:110, 60:100] != BG).any()  # box interiors untouched


def test_review_label_prefixed() -> None:
    # The label fill is as wide as its text: "review: x 30%" is wider than "x 30%".
    def label_width(needs_review: bool) -> int:
        img = draw_findings(blank(), [Finding("x", 0.3, Box(50, 100, 60, 110), needs_review, 0)])
        row = changed(img)[96]  # a row through the label fill, above the box
        return int(row.sum())

    assert label_width(True) > label_width(False) + 20


def test_class_colours_differ() -> None:
    a = draw_findings(blank(), [Finding("a", 0.9, Box(50, 50, 100, 100), False, 0)])
    b = draw_findings(blank(), [Finding("a", 0.9, Box(50, 50, 100, 100), False, 1)])
    assert not np.array_equal(a[100, 60], b[100, 60])


def test_boxes_outside_are_clipped_not_fatal() -> None:
    findings = [
        Finding("part", 0.9, Box(-50, -40, 60, 70), False, 0),
        Finding("far", 0.9, Box(1000, 1000, 2000, 2000), False, 1),
        Finding("left", 0.9, Box(-300, 10, -200, 50), True, 2),
        Finding("huge", 0.9, Box(-1e6, -1e6, 1e6, 1e6), True, 3),
        Finding("dot", 0.9, Box(255, 255, 255, 255), False, 4),
        Finding("nobox", 0.9, None, False, 5),
    ]
    img = blank()
    assert draw_findings(img, findings) is img
    assert (img[70, 0:60] == np.array(DEFAULT_STYLE.class_colors[0], np.uint8)).all()


def test_label_kept_inside_the_image() -> None:
    img = draw_findings(blank(), [Finding("a_long_label_name", 0.9, Box(240, 0, 255, 30), False, 0)])
    fill = (img == np.array(DEFAULT_STYLE.class_colors[0], np.uint8)).all(axis=2)
    ys, xs = np.nonzero(fill)
    assert xs.min() < 150  # the label moved left to fit, instead of running off the right edge
    assert ys.min() == 0  # and sits inside the box's top, not above the image


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-500, 800), st.floats(-500, 800), st.floats(0, 600), st.floats(0, 600), st.booleans()
        ),
        max_size=6,
    ),
    st.sampled_from([(20, 30), (200, 200), (256, 320)]),
)
def test_any_boxes_any_size_never_raise(
    boxes: list[tuple[float, float, float, float, bool]], size: tuple[int, int]
) -> None:
    img = blank(*size)
    findings = [Finding("f", 0.5, Box(x, y, x + w, y + h), r, i) for i, (x, y, w, h, r) in enumerate(boxes)]
    assert draw_findings(img, findings) is img


# --- HUD and banner ------------------------------------------------------------------------------
def test_hud_only_in_bottom_strip() -> None:
    img = draw_hud(blank(), HudState(30.0, 12.5, 41.0, 3, None, ("lung",)))
    rows = np.nonzero(changed(img).any(axis=1))[0]
    assert rows.min() > 256 * 0.75 and rows.max() == 255
    assert not changed(img)[: 256 * 3 // 4].any()


def test_hud_status_big_and_red() -> None:
    plain = draw_hud(blank(), HudState(30.0, 12.5, None, 0))
    status = draw_hud(blank(), HudState(30.0, 12.5, None, 0, "probe disconnected"))
    top_plain = np.nonzero(changed(plain).any(axis=1))[0].min()
    top_status = np.nonzero(changed(status).any(axis=1))[0].min()
    assert top_status < top_plain  # a taller strip
    assert dominant(status, RED).sum() > 100 and dominant(plain, RED).sum() == 0
    assert not changed(status)[: 256 // 2].any()


def test_hud_wraps_on_narrow_images() -> None:
    hud = HudState(30.0, 12.5, 41.0, 3, None, ("lung preset", "INT8 CPU", "probe 3.5 MHz"))
    wide = draw_hud(blank(120, 1600), hud)
    narrow = draw_hud(blank(120, 200), hud)
    rows = [np.nonzero(changed(i).any(axis=1))[0] for i in (wide, narrow)]
    assert (rows[1].max() - rows[1].min()) > 1.5 * (rows[0].max() - rows[0].min())


def test_banner_levels() -> None:
    alarm = draw_banner(blank(), "disk full", "alarm")
    warning = draw_banner(blank(), "disk full", "warning")
    assert dominant(alarm[:2], RED).all()
    assert not np.array_equal(alarm[2, 2], warning[2, 2])
    assert not changed(alarm)[256 // 2 :].any()


# --- compose -------------------------------------------------------------------------------------
def three_findings() -> tuple[Finding, ...]:
    return (
        Finding("a", 0.9, Box(50, 80, 100, 200), False, 0),
        Finding("b", 0.8, Box(120, 80, 200, 150), False, 1),
        Finding("c", 0.3, Box(60, 160, 220, 220), True, 2),
    )


def test_compose_leaves_frame_alone_and_reuses_out() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8)
    before = frame.copy()
    result = make_result(three_findings())
    out = compose(frame, result, HudState(30.0, 10.0, 50.0, 2))
    assert np.array_equal(frame, before)
    assert out is not frame and out.shape == (256, 256, 3) and out.dtype == np.uint8
    again = compose(frame, result, HudState(30.0, 10.0, 50.0, 2), out=out)
    assert again is out
    assert np.array_equal(frame, before)
    assert compose(frame, result, None, out=np.empty((10, 10, 3), np.uint8)).shape == (256, 256, 3)


@pytest.mark.parametrize("shape", [(256, 256), (256, 256, 1), (256, 256, 4)])
def test_compose_gray_and_bgra(shape: tuple[int, ...]) -> None:
    frame = np.full(shape, BG, np.uint8)
    out = compose(frame, make_result(three_findings()), HudState(30.0, 10.0, None, 0))
    assert out.shape == (256, 256, 3)
    assert (out[128, 128] == BG).all()  # untouched middle carries the gray value into all channels
    assert dominant(out, GREEN).sum() > 20  # meter drawn


def test_compose_without_result_and_gated() -> None:
    frame = blank()
    waiting = compose(frame, None, None)
    assert changed(waiting).any() and dominant(waiting, GREEN).sum() == 0  # grey "quality: --"
    gated = compose(
        frame, make_result(three_findings(), gated=True, quality=q("no_contact", 0.9, False)), None
    )
    assert (gated[200, 50:101] == BG).all()  # findings not drawn when gated
    assert dominant(gated, RED).sum() > 20


def test_compose_banner_pushes_meter_down() -> None:
    plain = compose(blank(), make_result(), None)
    banner = compose(blank(), make_result(), None, banner=("probe disconnected", "alarm"))
    y_plain = np.nonzero(dominant(plain, GREEN).any(axis=1))[0].min()
    y_banner = np.nonzero(dominant(banner, GREEN).any(axis=1))[0].min()
    assert y_banner > y_plain


def test_everything_returns_the_same_array() -> None:
    img = blank()
    assert draw_quality_meter(img, q()) is img
    assert draw_findings(img, three_findings()) is img
    assert draw_hud(img, HudState(1.0, 1.0)) is img
    assert draw_banner(img, "x") is img


def test_scales_with_image_size() -> None:
    small = draw_quality_meter(blank(200, 200), q())
    big = draw_quality_meter(blank(1080, 1920), q())
    h_small = np.nonzero(changed(small).any(axis=1))[0].max()
    h_big = np.nonzero(changed(big).any(axis=1))[0].max()
    assert h_big > 2.5 * h_small


def test_rejects_images_it_cannot_draw_on() -> None:
    with pytest.raises(ValueError):
        draw_findings(np.zeros((10, 10), np.uint8), [])
    with pytest.raises(ValueError):
        draw_hud(np.zeros((10, 10, 3), np.uint16), HudState(1.0, 1.0))
    with pytest.raises(ValueError):
        compose(np.zeros((10, 10), np.float32), None, None)


# --- per-frame counters (B-lines) ----------------------------------------------------------------
def b_lines(sure: int, review: int = 0) -> tuple[Finding, ...]:
    sure_ones = [
        Finding("b_line", 0.9, Box(10 + 20 * i, 40, 20 + 20 * i, 200), False, 0) for i in range(sure)
    ]
    unsure = [Finding("b_line", 0.3, Box(150, 40, 160, 200), True, 0) for _ in range(review)]
    return (*sure_ones, *unsure, Finding("pleural_line", 0.9, Box(0, 30, 250, 36), False, 1))


def test_compose_counts_only_when_the_detector_is_in_the_result() -> None:
    from edge.results import ModelInfo

    det = ModelInfo("lung-detector", "1", "0" * 64, "int8", "onnxruntime", "CPUExecutionProvider")
    with_det = Result(
        new_result_id(), 1, 0.0, "test", "US", q(), b_lines(4), (det,), StageTimes(0, 0, 0, 0, 0)
    )
    other = Result(new_result_id(), 1, 0.0, "test", "US", q(), b_lines(4), (), StageTimes(0, 0, 0, 0, 0))
    counted = (("b_line", "lung-detector"),)
    a = compose(blank(), with_det, None, counted=counted)
    b = compose(blank(), other, None, counted=counted)
    c = compose(blank(), with_det, None)
    top_right = (slice(0, 60), slice(160, 256))
    assert not np.array_equal(a[top_right], b[top_right]), "a result without the detector shows '--'"
    assert changed(c[top_right]).sum() < changed(a[top_right]).sum(), "no counters unless asked"


def test_a_frame_no_model_is_for_gets_a_banner_and_no_verdict() -> None:
    dx = Result(new_result_id(), 1, 0.0, "test", "DX", None, (), (), StageTimes(0, 0, 0, 0, 0),
                no_model=True)  # fmt: skip
    out = compose(blank(), dx, HudState(30.0, 0.0), counted=(("b_line", "lung-detector"),))
    warning = np.array(next(f for lv, f, _ in DEFAULT_STYLE.banner_colors if lv == "warning"))
    is_warning = np.abs(out.astype(int) - warning).sum(axis=2) < 30
    banner_rows = np.nonzero(is_warning.mean(axis=1) > 0.5)[0]
    assert banner_rows.size > 10 and banner_rows.min() == 0, "a full-width banner at the top"
    below = slice(banner_rows.max() + 1, 200)
    assert not changed(out[below]).any(), "no quality meter, no counter under it"
    plain = compose(blank(), make_result(), None, counted=(("b_line", "lung-detector"),))
    assert not (np.abs(plain.astype(int) - warning).sum(axis=2) < 30).any(), "no banner where a model ran"
    assert no_model_text("DX") == "no model for DX: shown without AI"


def test_compose_shows_the_clip_score_where_the_result_has_one() -> None:
    from edge.clip_score import ClipScore
    from edge.results import ModelInfo

    det = ModelInfo("lung-detector", "1", "0" * 64, "int8", "onnxruntime", "CPUExecutionProvider")
    score = ClipScore("b_line", 2.4, 2.4, 40, 2.9, 3.0, True, False, "start")
    no_box = [(Finding("b_line", 0.9),) * (2 + i) for i in range(2)]  # counted, nothing drawn
    per_frame = [Result(new_result_id(), i, 0.0, "test", "US", q(), no_box[i], (det,),
                        StageTimes(0, 0, 0, 0, 0), clip_scores=(score,)) for i in range(2)]  # fmt: skip
    counted = (("b_line", "lung-detector"),)
    frames = [compose(blank(), r, None, counted=counted) for r in per_frame]
    plain = compose(blank(), replace(per_frame[0], clip_scores=()), None, counted=counted)
    badge = (slice(0, 25), slice(128, 256))  # the big number's rows (the small line is below)
    assert np.array_equal(frames[0][badge], frames[1][badge]), "the big number does not flicker"
    assert not np.array_equal(frames[0][badge], plain[badge]), "the clip score replaces the count"
