"""The counters in the top-right corner: a label's count per frame, or its clip score.

A per-frame count flickers as the probe and the lung move ("B-lines 2", "3", "2", ...). Where the
chain gives a clip score for the label (``Result.clip_scores``, ``edge.inference.temporal``), the
badge shows that instead, big and still ("B-lines 2.4"), with what it covers and the frame's own
count on a small line under it ("over 3 s | now 3 +1?"). Same drawing rules as ``overlay``: in
place, on BGR uint8 images.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from edge.clip_score import ClipScore
from edge.render.style import DEFAULT_STYLE, Metrics, OverlayStyle, backdrop, check, put
from edge.results import Finding

# What a label's pattern is called when its clip score flags one; others say "<word> pattern".
PATTERN_WORDS = {"b_line": "B-pattern"}


def count_findings(findings: Iterable[Finding], label: str) -> tuple[int, int]:
    """(confident, needs-review) findings of ``label``."""
    sure = review = 0
    for f in findings:
        if f.label == label:
            if f.needs_review:
                review += 1
            else:
                sure += 1
    return sure, review


def _word(label: str, style: OverlayStyle) -> tuple[str, int]:
    return next(((w, a) for lab, w, a in style.counters if lab == label), (label.replace("_", " "), 0))


def _badge(image: np.ndarray, y: int, lines: list[tuple[str, tuple[int, int, int], bool]],
           m: Metrics, style: OverlayStyle) -> None:  # fmt: skip
    """Right-aligned lines (text, colour, big) on one backdrop, starting at ``y``."""
    widths = [cv2.getTextSize(t, style.font, m.big_scale if big else m.scale,
                              m.big_thick if big else m.thick)[0][0] for t, _, big in lines]  # fmt: skip
    x1 = image.shape[1] - m.margin
    x0 = max(x1 - max(widths) - 2 * m.pad, 0)
    height = sum((m.big_h + m.big_base if big else m.text_h + m.base) + m.pad for _, _, big in lines)
    backdrop(image, x0, y, x1, y + height + m.pad, style)
    y += m.pad
    for text, color, big in lines:
        y = put(image, text, x0 + m.pad, y, color, m, style, big=big) + m.pad


def counter_height(m: Metrics, clip: bool = False) -> int:
    """Height of one badge and the gap under it; a clip score's has a small second line."""
    return m.big_h + m.big_base + 3 * m.pad + (m.text_h + m.base + m.pad if clip else 0)


def draw_counters(
    image: np.ndarray,
    findings: Iterable[Finding] | None,
    labels: Iterable[str],
    *,
    top: int = 0,
    style: OverlayStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """Draw "B-lines 3" badges in the top-right corner, one per counted label, stacked.

    Uncertain (needs_review) findings are shown apart, "+1?", never added to the count. At or
    above the style's alert count the badge turns amber. ``findings`` None (no verdict: the
    detector has not run or was gated) shows "--".
    """
    m = check(image, style)
    items = list(findings) if findings is not None else None
    y = top + m.margin
    for label in labels:
        word, alert = _word(label, style)
        if items is None:
            text, color = f"{word} --", style.none_color
        else:
            sure, review = count_findings(items, label)
            text = f"{word} {sure}" + (f" +{review}?" if review else "")
            color = style.borderline_color if alert and sure >= alert else style.text_color
        _badge(image, y, [(text, color, True)], m, style)
        y += counter_height(m)
    return image


def draw_clip_counter(
    image: np.ndarray,
    score: ClipScore,
    findings: Iterable[Finding] | None,
    *,
    top: int = 0,
    style: OverlayStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """Draw one label's clip score as a badge in the top-right corner: "B-lines 2.4" big (amber and
    "B-pattern" when it flags one), then "over 3 s | now 3 +1?" small, the frame's own count last
    ("now --" when the detector did not run on it). "B-lines --" and "settling" until it is ready."""
    m = check(image, style)
    word, _ = _word(score.label, style)
    if findings is None:
        now = "now --"
    else:
        sure, review = count_findings(findings, score.label)
        now = f"now {sure}" + (f" +{review}?" if review else "")
    if score.ready and score.shown is not None:
        big = (f"{word} {score.shown:.1f}", style.borderline_color if score.pattern else style.text_color)
        over = f"over {max(1, round(score.span_s))} s"
        if score.pattern:
            over = f"{PATTERN_WORDS.get(score.label, word + ' pattern')} | {over}"
    else:
        big, over = (f"{word} --", style.none_color), "settling"
    _badge(image, top + m.margin, [(*big, True), (f"{over} | {now}", style.text_color, False)], m, style)
    return image
