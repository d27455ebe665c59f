"""The top-right counters, checked on pixels: per-frame counts, and the clip score's still badge."""

from __future__ import annotations

import numpy as np

from edge.clip_score import ClipScore
from edge.render.counters import count_findings, draw_clip_counter, draw_counters
from edge.render.style import DEFAULT_STYLE
from edge.results import Box, Finding

BG = 60


def blank(h: int = 256, w: int = 256) -> np.ndarray:
    return np.full((h, w, 3), BG, np.uint8)


def changed(img: np.ndarray) -> np.ndarray:
    return np.any(img != BG, axis=2)


def b_lines(sure: int, review: int = 0) -> tuple[Finding, ...]:
    sure_ones = [
        Finding("b_line", 0.9, Box(10 + 20 * i, 40, 20 + 20 * i, 200), False, 0) for i in range(sure)
    ]
    unsure = [Finding("b_line", 0.3, Box(150, 40, 160, 200), True, 0) for _ in range(review)]
    return (*sure_ones, *unsure, Finding("pleural_line", 0.9, Box(0, 30, 250, 36), False, 1))


def amber_pixels(img: np.ndarray) -> int:
    amber = np.array(DEFAULT_STYLE.borderline_color)
    return int((np.abs(img.astype(int) - amber).sum(axis=2) < 60).sum())


def clip(shown: float | None = 2.4, ready: bool = True, pattern: bool = False) -> ClipScore:
    return ClipScore("b_line", shown, shown, 40, 2.9, 3.0, ready, pattern, "start")


def test_count_keeps_uncertain_findings_apart() -> None:
    assert count_findings(b_lines(3, 2), "b_line") == (3, 2)
    assert count_findings(b_lines(0), "b_line") == (0, 0)


def _right_half_text(img: np.ndarray) -> np.ndarray:
    return changed(img)[:, img.shape[1] // 2 :]


def test_counter_badge_top_right_amber_from_three() -> None:
    few = draw_counters(blank(), b_lines(2), ("b_line",))
    many = draw_counters(blank(), b_lines(3), ("b_line",))
    ys, xs = np.nonzero(changed(few))
    assert xs.min() > 128 and ys.max() < 128, "a badge in the top-right corner, nothing elsewhere"
    assert amber_pixels(many) > 20 and amber_pixels(few) == 0, "three or more B-lines: the usual B-pattern"


def test_counter_reads_differently_for_none_zero_and_uncertain() -> None:
    none = draw_counters(blank(), None, ("b_line",))
    zero = draw_counters(blank(), (), ("b_line",))
    uncertain = draw_counters(blank(), b_lines(0, 1), ("b_line",))
    assert not np.array_equal(none, zero) and not np.array_equal(zero, uncertain)
    assert _right_half_text(uncertain).sum() > _right_half_text(zero).sum(), "the '+1?' is drawn too"


def test_the_clip_badge_is_the_same_whatever_the_frame_says_but_its_small_line() -> None:
    a = draw_clip_counter(blank(), clip(), b_lines(2))
    b = draw_clip_counter(blank(), clip(), b_lines(3))
    ys, xs = np.nonzero(changed(a))
    assert xs.min() > 100 and ys.max() < 128, "top-right corner"
    rows = np.nonzero((a != b).any(axis=(1, 2)))[0]
    big_rows = np.nonzero(changed(draw_counters(blank(), b_lines(2), ("b_line",))).any(axis=1))[0]
    assert rows.size and rows.min() > big_rows.max() - 2, "only the small 'now' line differs"
    assert amber_pixels(a) == 0


def test_the_clip_badge_flags_a_pattern_and_says_when_it_is_settling() -> None:
    flagged = draw_clip_counter(blank(), clip(3.2, pattern=True), b_lines(1))
    assert amber_pixels(flagged) > 20, "a B-pattern turns the number amber, whatever this frame counts"
    settling = draw_clip_counter(blank(), clip(None, ready=False), None)
    ready = draw_clip_counter(blank(), clip(), None)
    assert not np.array_equal(settling, ready) and amber_pixels(settling) == 0
    wider = draw_clip_counter(blank(), clip(2.4), b_lines(2, 1))
    assert changed(wider).sum() > changed(draw_clip_counter(blank(), clip(2.4), b_lines(2))).sum()
