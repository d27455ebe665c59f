"""The overlay's look and layout primitives: colours and wording (``OverlayStyle``), sizes derived
from (style, image size) and cached, a translucent backdrop, and text placed by its cap top.

Kept apart from the drawing functions (``edge.render.overlay``) so a device maker can restyle the
overlay, and the thumbnail and tests can reason about layout, without touching what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

Color = tuple[int, int, int]  # BGR
BannerLevel = Literal["info", "warning", "alarm"]


@dataclass(frozen=True, slots=True)
class OverlayStyle:
    """Colours (BGR), thresholds and wording. Frozen and hashable, so derived sizes are cached."""

    ok_color: Color = (60, 200, 60)  # green
    borderline_color: Color = (0, 175, 255)  # amber
    bad_color: Color = (40, 40, 230)  # red
    none_color: Color = (150, 150, 150)  # grey: no quality verdict yet
    review_color: Color = (255, 0, 255)  # magenta: never used for a class
    status_color: Color = (40, 40, 255)  # big HUD status ("probe disconnected")
    text_color: Color = (245, 245, 245)  # on dark backdrops
    text_on_fill: Color = (0, 0, 0)  # on bright label fills
    track_color: Color = (90, 90, 90)  # empty part of the quality bar
    class_colors: tuple[Color, ...] = (
        (0, 230, 255),  # yellow
        (255, 220, 0),  # cyan-ish blue
        (0, 140, 255),  # orange
        (120, 255, 120),  # light green
        (255, 150, 60),  # azure
        (200, 200, 255),  # pale rose
        (0, 255, 190),  # lime
        (255, 255, 255),  # white
    )
    banner_colors: tuple[tuple[BannerLevel, Color, Color], ...] = (  # level, fill, text
        ("info", (90, 60, 30), (245, 245, 245)),
        ("warning", (0, 175, 255), (0, 0, 0)),
        ("alarm", (30, 30, 220), (255, 255, 255)),
    )
    borderline_score: float = 0.7  # ok but below this score -> amber
    # Per-frame counters drawn top-right, with the count from which the badge turns amber:
    # three or more B-lines in one intercostal view is the usual "B-pattern" (an interstitial sign).
    counters: tuple[tuple[str, str, int], ...] = (("b_line", "B-lines", 3),)
    backdrop_alpha: float = 0.72  # weight of the dark backdrop over the image
    backdrop_level: int = 10  # grey level of the backdrop
    font: int = cv2.FONT_HERSHEY_SIMPLEX
    line_type: int = cv2.LINE_AA  # for text; boxes are axis-aligned and drawn with LINE_8
    quality_words: tuple[tuple[str, str], ...] = (
        ("diagnostic", "diagnostic"),
        ("no_contact", "no contact"),
        ("shadow", "shadow / poor coupling"),
        ("poor_coupling", "shadow / poor coupling"),
        ("gain_high", "gain too high"),
        ("gain_low", "gain too low"),
    )


DEFAULT_STYLE = OverlayStyle()


@dataclass(frozen=True, slots=True)
class Metrics:
    """Sizes derived from one (style, image size); computed once and cached."""

    scale: float  # font scale of normal text
    thick: int  # its stroke
    text_h: int  # cap height in px
    base: int  # baseline depth in px
    big_scale: float
    big_thick: int
    big_h: int
    big_base: int
    line: int  # box stroke
    pad: int
    margin: int
    dash: int
    gap: int
    meter_w: int
    bar_h: int
    banner_h: int


@lru_cache(maxsize=32)
def metrics(style: OverlayStyle, height: int, width: int) -> Metrics:
    unit = min(height, width)
    scale = min(max(unit / 900.0, 0.35), 1.6)  # ~8 px caps at 200 px, ~27 px at 1080 px
    thick = 1 if scale < 0.75 else 2
    big_scale = scale * 1.6
    big_thick = max(2, thick + 1)
    (_, text_h), base = cv2.getTextSize("Ag", style.font, scale, thick)
    (_, big_h), big_base = cv2.getTextSize("Ag", style.font, big_scale, big_thick)
    line = 1 + unit // 400
    pad = max(2, round(unit / 120))
    margin = max(2, round(unit / 80))
    # Fixed meter width, sized for the longest wording, so it does not jitter between labels.
    (longest, _), _ = cv2.getTextSize("shadow / poor coupling 100%", style.font, scale, thick)
    meter_w = min(max(longest + 2 * pad, int(0.22 * width)), width - 2 * margin)
    return Metrics(
        scale=scale,
        thick=thick,
        text_h=text_h,
        base=base,
        big_scale=big_scale,
        big_thick=big_thick,
        big_h=big_h,
        big_base=big_base,
        line=line,
        pad=pad,
        margin=margin,
        dash=max(4, 5 * line),
        gap=max(4, 4 * line),
        meter_w=max(meter_w, 1),
        bar_h=max(4, text_h * 2 // 3),
        banner_h=big_h + big_base + 2 * pad,
    )


def check(image: np.ndarray, style: OverlayStyle) -> Metrics:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"overlay draws on BGR uint8 HxWx3 images, got {image.dtype} {image.shape}")
    return metrics(style, image.shape[0], image.shape[1])


def backdrop(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, style: OverlayStyle) -> None:
    """Darken a rectangle so text reads on bright and dark images alike (blends the ROI only)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    roi = image[y0:y1, x0:x1]
    a = style.backdrop_alpha
    # roi*(1-a) + level*a in one saturating pass, written back into the view.
    cv2.convertScaleAbs(roi, dst=roi, alpha=1.0 - a, beta=a * style.backdrop_level)


def put(
    image: np.ndarray,
    text: str,
    x: int,
    y_top: int,
    color: Color,
    m: Metrics,
    style: OverlayStyle,
    big: bool = False,
) -> int:
    """Put text with its cap top at ``y_top``; return the y below its baseline."""
    scale, thick, cap, base = (
        (m.big_scale, m.big_thick, m.big_h, m.big_base) if big else (m.scale, m.thick, m.text_h, m.base)
    )
    cv2.putText(image, text, (x, y_top + cap), style.font, scale, color, thick, style.line_type)
    return y_top + cap + base
