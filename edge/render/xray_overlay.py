"""What an X-ray's overlay adds: the finding's heatmap over the image, and a panel of what the
radiographer reads (the finding, the exposure, the positioning), in the top-left corner where an
ultrasound frame has its quality meter (docs/xray.md).

Drawn on the full-resolution image: the heatmap is resized from the model's small map to the frame
rectangle the model's input covered (``Heatmap`` x0..y1) and blended there only, so its cost is the
size of the lung region, not of the screen.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.render.style import DEFAULT_STYLE, Color, Metrics, OverlayStyle, backdrop, check, put
from edge.results import Result
from edge.xray_qa import Heatmap

HEATMAP_ALPHA = 0.45  # the most a hot spot covers the image; cold areas leave it as it is
HEATMAP_FLOOR = 0.2  # activation under this share of the map's peak is not coloured at all


def draw_heatmap(
    image: np.ndarray, heatmap: Heatmap, *, alpha: float = HEATMAP_ALPHA, floor: float = HEATMAP_FLOOR
) -> np.ndarray:
    """Blend ``heatmap`` (JET colours, weight growing with activation) over its rectangle, in place."""
    check(image, DEFAULT_STYLE)
    h, w = image.shape[:2]
    rx0, ry0, rx1, ry1 = heatmap.x0, heatmap.y0, heatmap.x1, heatmap.y1
    if not all(math.isfinite(v) for v in (rx0, ry0, rx1, ry1)) or rx1 <= rx0 or ry1 <= ry0:
        return image
    # The map resized to its whole rectangle (which may overhang the image: a letterboxed input),
    # then cut to the part on the image.
    x0, y0 = max(math.floor(rx0), 0), max(math.floor(ry0), 0)
    x1, y1 = min(math.ceil(rx1), w), min(math.ceil(ry1), h)
    if x1 <= x0 or y1 <= y0 or heatmap.values.size == 0:
        return image
    values = np.clip(np.nan_to_num(heatmap.values.astype(np.float32)), 0.0, 1.0)
    full_w, full_h = max(1, round(rx1 - rx0)), max(1, round(ry1 - ry0))
    scaled = cv2.resize(values, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
    ox, oy = x0 - math.floor(rx0), y0 - math.floor(ry0)
    scaled = scaled[oy : oy + (y1 - y0), ox : ox + (x1 - x0)]
    scaled = np.ascontiguousarray(scaled)
    roi = image[y0 : y0 + scaled.shape[0], x0 : x0 + scaled.shape[1]]
    colours = cv2.applyColorMap(cv2.convertScaleAbs(scaled, alpha=255.0), cv2.COLORMAP_JET)
    # Weight 0 under the floor, rising to ``alpha`` at the peak; one SIMD blend over the region.
    weight = cv2.max(cv2.min((scaled - floor) * (alpha / max(1.0 - floor, 1e-6)), alpha), 0.0)
    roi[...] = cv2.blendLinear(roi, colours, 1.0 - weight, weight)
    return image


def _lines(result: Result, style: OverlayStyle) -> list[tuple[str, Color]]:
    """The panel's lines, most important first, each with its colour."""
    lines: list[tuple[str, Color]] = []
    q = result.quality
    if q is not None and not result.gated:
        review = any(f.needs_review and f.box is None for f in result.findings)
        score = f"{q.score:.0%}" if math.isfinite(q.score) else "--"
        if review:
            lines.append((f"review: {q.label} {score}", style.review_color))
        else:
            lines.append((f"{q.label} {score}", style.ok_color if q.ok else style.bad_color))
    e = result.exposure
    if e is not None:
        if e.repeat:
            color = style.bad_color
        elif e.band == "within":
            color = style.ok_color
        elif e.band is None:
            color = style.none_color
        else:
            color = style.borderline_color
        lines.append((e.message, color))
    p = result.positioning
    if p is not None:
        if p.skipped:
            lines.append((f"positioning not checked: {p.skipped}", style.none_color))
        elif p.messages:
            lines += [(m, style.bad_color) for m in p.messages]
        else:
            lines.append(("positioning: lung fields in the field, symmetric", style.ok_color))
    return lines


def _wrap(text: str, width: int, m: Metrics, style: OverlayStyle) -> list[str]:
    """Greedy word wrap of ``text`` into lines no wider than ``width`` px."""
    out: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        (tw, _), _ = cv2.getTextSize(trial, style.font, m.scale, m.thick)
        if current and tw > width:
            out.append(current)
            current = word
        else:
            current = trial
    return [*out, current] if current else out


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1


def _panel(
    image: np.ndarray, result: Result, top: int, style: OverlayStyle
) -> tuple[list[tuple[str, Color]], Rect] | None:
    """The panel's wrapped rows and its backdrop's rectangle; None when there is nothing to say."""
    m = check(image, style)
    w = image.shape[1]
    max_w = max(w // 2, m.meter_w) - 2 * m.pad
    rows = [(text, color) for line, color in _lines(result, style) for text in _wrap(line, max_w, m, style)]
    if not rows:
        return None
    widths = [cv2.getTextSize(t, style.font, m.scale, m.thick)[0][0] for t, _ in rows]
    x0, y0 = m.margin, top + m.margin
    y1 = y0 + m.pad + len(rows) * (m.text_h + m.base + m.pad)
    return rows, (x0, y0, x0 + max(widths) + 2 * m.pad, y1)


def xray_panel_rect(
    image: np.ndarray, result: Result, *, top: int = 0, style: OverlayStyle = DEFAULT_STYLE
) -> Rect | None:
    """Where ``draw_xray_panel`` will draw, so that box labels can keep out of it."""
    panel = _panel(image, result, top, style)
    return None if panel is None else panel[1]


def draw_xray_panel(
    image: np.ndarray, result: Result, *, top: int = 0, style: OverlayStyle = DEFAULT_STYLE
) -> int:
    """The finding, exposure and positioning lines over a dark backdrop in the top-left corner,
    ``top`` px down; returns the y below the panel (``top`` when there is nothing to say)."""
    panel = _panel(image, result, top, style)
    if panel is None:
        return top
    m = check(image, style)
    rows, (x0, y0, x1, y1) = panel
    backdrop(image, x0, y0, x1, y1, style)
    y = y0 + m.pad
    for text, color in rows:
        put(image, text, x0 + m.pad, y, color, m, style)
        y += m.text_h + m.base + m.pad
    return y1
