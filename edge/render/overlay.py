"""Drawing results over the live image: small pure functions on numpy images.

Every ``draw_*`` function takes a BGR uint8 HxWx3 image, draws on it IN PLACE and returns the
same array object. The caller owns the copy: draw on a buffer you may change (``compose`` copies
the frame into one for you). Nothing here keeps state between calls except the cache of sizes
derived from (style, image size) in ``edge.render.style``, so the functions are safe to call from
any one thread.

Text and line widths scale with the image, so the overlay reads on 200x200 and 1920x1080 alike.
``compose`` is what the display loop calls once per frame; it is kept cheap (a frame copy plus a
few small cv2 primitives; translucency is blended on the small backdrop regions only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from edge.render.counters import counter_height, draw_clip_counter, draw_counters
from edge.render.style import (
    DEFAULT_STYLE,
    BannerLevel,
    Color,
    Metrics,
    OverlayStyle,
    backdrop,
    check,
    metrics,
    put,
)
from edge.render.xray_overlay import Rect, draw_heatmap, draw_xray_panel, xray_panel_rect
from edge.results import Finding, Quality, Result


@dataclass(frozen=True, slots=True)
class HudState:
    """What the bottom status line shows."""

    source_fps: float
    ai_fps: float
    latency_ms: float | None = None
    skipped: int = 0  # frames inference did not get to
    status: str | None = None  # e.g. "probe disconnected": shown big and red
    extra: tuple[str, ...] = ()
    stale: int = 0  # live frames dropped as too old to show ([live] max_age_ms)
    films: int | None = None  # stills (X-ray films) shown: counted in place of the frame rates


@lru_cache(maxsize=8)
def _words(style: OverlayStyle) -> dict[str, str]:
    return dict(style.quality_words)


def quality_words(label: str, style: OverlayStyle = DEFAULT_STYLE) -> str:
    """The operator's words for a QA label ("no_contact" -> "no contact")."""
    return _words(style).get(label, label.replace("_", " "))


def _quality_color(quality: Quality | None, score: float, style: OverlayStyle) -> Color:
    if quality is None:
        return style.none_color
    if not quality.ok:
        return style.bad_color
    return style.borderline_color if score < style.borderline_score else style.ok_color


def draw_quality_meter(
    image: np.ndarray,
    quality: Quality | None,
    *,
    top: int = 0,
    note: str | None = None,
    style: OverlayStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """Draw the QA meter in the top-left corner (``top`` px down, e.g. below a banner).

    Green when ok, amber when ok but the score is below ``style.borderline_score``, red when not
    ok, grey "quality: --" for None. The bar's filled length is proportional to the score.
    ``note`` adds a small line under the bar (e.g. "detection paused").
    """
    m = check(image, style)
    score = 0.0 if quality is None or not math.isfinite(quality.score) else min(max(quality.score, 0.0), 1.0)
    color = _quality_color(quality, score, style)
    if quality is None:
        text, text_color = "quality: --", style.none_color
    else:
        text, text_color = f"{quality_words(quality.label, style)} {score:.0%}", style.text_color
    x0, y0 = m.margin, top + m.margin
    x1 = x0 + m.meter_w
    bar_y0 = y0 + m.pad + m.text_h + m.base
    bar_y1 = bar_y0 + m.bar_h
    y1 = bar_y1 + m.pad + (m.text_h + m.base + m.pad if note else 0)
    backdrop(image, x0, y0, x1, y1, style)
    put(image, text, x0 + m.pad, y0 + m.pad, text_color, m, style)
    bx0, bx1 = x0 + m.pad, x1 - m.pad - 1
    cv2.rectangle(image, (bx0, bar_y0), (bx1, bar_y1 - 1), style.track_color, -1)
    fill = round(score * (bx1 - bx0 + 1))
    if fill > 0:
        cv2.rectangle(image, (bx0, bar_y0), (bx0 + fill - 1, bar_y1 - 1), color, -1)
    if note:
        put(image, note, x0 + m.pad, bar_y1 + m.pad, style.borderline_color, m, style)
    return image


def no_model_text(modality: str) -> str:
    """The banner over a frame no model of the run is for (a chest X-ray on ultrasound models)."""
    return f"no model for {modality}: shown without AI"


def _dashed_rect(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Color, m: Metrics) -> None:
    """A rectangle of dashes (a dash starts at each corner), drawn as numpy slice fills.

    Slices are ~2x faster than cv2 line calls here and clip at the image edge by themselves.
    """
    c = np.array(color, np.uint8)  # one conversion, not one per slice
    t = m.line + 1  # a touch heavier than solid boxes, so broken lines still catch the eye
    lo = t // 2
    hi = t - lo
    period = m.dash + m.gap
    for s in range(x0, x1 + 1, period):
        e = min(s + m.dash, x1 + 1)
        image[max(y0 - lo, 0) : y0 + hi, s:e] = c
        image[max(y1 - lo, 0) : y1 + hi, s:e] = c
    for s in range(y0, y1 + 1, period):
        e = min(s + m.dash, y1 + 1)
        image[s:e, max(x0 - lo, 0) : x0 + hi] = c
        image[s:e, max(x1 - lo, 0) : x1 + hi] = c


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label(
    image: np.ndarray,
    text: str,
    x: int,
    y: int,
    fill: Color,
    m: Metrics,
    style: OverlayStyle,
    avoid: Rect | None = None,
) -> None:
    """A filled label sitting on (x, y), or hanging below it without room above (or where it would
    cover ``avoid``, e.g. the X-ray panel), or below ``avoid`` when both would; kept inside."""
    h, w = image.shape[:2]
    (tw, th), base = cv2.getTextSize(text, style.font, m.scale, m.thick)
    lw, lh = tw + 2 * m.pad, th + base + m.pad
    lx0 = min(max(x, 0), max(w - lw, 0))
    ly0 = y - lh if y - lh >= 0 else y
    if avoid is not None and _overlaps((lx0, ly0, lx0 + lw, ly0 + lh), avoid):
        ly0 = y if not _overlaps((lx0, y, lx0 + lw, y + lh), avoid) else avoid[3]
    ly0 = min(max(ly0, 0), max(h - lh, 0))
    cv2.rectangle(image, (lx0, ly0), (lx0 + lw - 1, ly0 + lh - 1), fill, -1)
    put(image, text, lx0 + m.pad, ly0 + m.pad // 2, style.text_on_fill, m, style)


def draw_findings(
    image: np.ndarray,
    findings: Iterable[Finding],
    *,
    style: OverlayStyle = DEFAULT_STYLE,
    avoid: Rect | None = None,
) -> np.ndarray:
    """Draw each finding's box with "label 87%".

    Confident findings: solid box in the class colour. ``needs_review`` findings: dashed box in
    ``style.review_color`` and the label prefixed "review: ". Boxes are clipped to the image;
    boxes wholly outside and findings without a box are skipped.
    """
    m = check(image, style)
    h, w = image.shape[:2]
    for f in findings:
        b = f.box
        if b is None:
            continue
        x0, y0 = max(math.floor(b.x0), 0), max(math.floor(b.y0), 0)
        x1, y1 = min(math.ceil(b.x1), w - 1), min(math.ceil(b.y1), h - 1)
        if x1 < x0 or y1 < y0:
            continue  # wholly outside the image
        conf = f"{f.confidence:.0%}" if math.isfinite(f.confidence) else "--"
        if f.needs_review:
            color = style.review_color
            _dashed_rect(image, x0, y0, x1, y1, color, m)
            text = f"review: {f.label} {conf}"
        else:
            color = style.class_colors[f.class_id % len(style.class_colors)]
            # Axis-aligned edges: anti-aliasing buys nothing and costs 3x.
            cv2.rectangle(image, (x0, y0), (x1, y1), color, m.line, cv2.LINE_8)
            text = f"{f.label} {conf}"
        _label(image, text, x0, y0, color, m, style, avoid)
    return image


def _hud_items(hud: HudState) -> list[str]:
    latency = f"latency {'--' if hud.latency_ms is None else f'{hud.latency_ms:.0f} ms'}"
    if hud.films is not None:  # a still: each film is analysed, so no rate and nothing skipped
        figures = [f"film {hud.films}", latency]
    else:
        rates = [f"src {hud.source_fps:.1f} fps", f"AI {hud.ai_fps:.1f} fps"]
        figures = [*rates, latency, f"skipped {hud.skipped}"]
    return [
        *figures,
        *((f"stale {hud.stale}",) if hud.stale else ()),
        *hud.extra,
    ]


def _wrap(items: list[str], width: int, m: Metrics, style: OverlayStyle) -> list[str]:
    """Greedy wrap of " | "-joined items into lines that fit ``width`` px (one line on wide images)."""
    sep = " | "
    (sep_w, _), _ = cv2.getTextSize(sep, style.font, m.scale, m.thick)
    lines: list[str] = []
    current, used = "", 0
    for item in items:
        (iw, _), _ = cv2.getTextSize(item, style.font, m.scale, m.thick)
        if current and used + sep_w + iw > width:
            lines.append(current)
            current, used = "", 0
        current, used = (f"{current}{sep}{item}", used + sep_w + iw) if current else (item, iw)
    return [*lines, current] if current else lines


@lru_cache(maxsize=16)
def _hud_lines(hud: HudState, width: int, m: Metrics, style: OverlayStyle) -> tuple[str, ...]:
    """The HUD's wrapped lines, built once per distinct HUD: the pipeline refreshes its figures 4
    times a second, and measuring text on every frame cost more than drawing it."""
    return tuple(_wrap(_hud_items(hud), width, m, style))


def draw_hud(image: np.ndarray, hud: HudState, *, style: OverlayStyle = DEFAULT_STYLE) -> np.ndarray:
    """Draw the status line(s) in a strip along the bottom edge, over a translucent backdrop.

    fps, latency and skipped count, then ``extra``, wrapped onto a second line only when the image
    is too narrow; a set ``status`` is shown above them, big and red. Nothing is drawn above the strip.
    """
    m = check(image, style)
    h, w = image.shape[:2]
    lines = _hud_lines(hud, w - 2 * m.pad, m, style)
    strip_h = m.pad + len(lines) * (m.text_h + m.base + m.pad)
    if hud.status:
        strip_h += m.big_h + m.big_base + m.pad
    y = max(h - strip_h, 0)
    backdrop(image, 0, y, w, h, style)
    y += m.pad
    if hud.status:
        y = put(image, hud.status, m.pad, y, style.status_color, m, style, big=True) + m.pad
    for text in lines:
        y = put(image, text, m.pad, y, style.text_color, m, style) + m.pad
    return image


def draw_banner(
    image: np.ndarray,
    text: str,
    level: BannerLevel = "alarm",
    *,
    top: int = 0,
    style: OverlayStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """Draw an opaque full-width band with centred big text (alarms: "probe disconnected")."""
    m = check(image, style)
    w = image.shape[1]
    fill, ink = next(((f, t) for lv, f, t in style.banner_colors if lv == level), style.banner_colors[-1][1:])
    y0 = max(top, 0)
    cv2.rectangle(image, (0, y0), (w - 1, y0 + m.banner_h - 1), fill, -1)
    (tw, _), _ = cv2.getTextSize(text, style.font, m.big_scale, m.big_thick)
    x = max((w - tw) // 2, m.pad)
    put(image, text, x, y0 + m.pad, ink, m, style, big=True)
    return image


def compose(
    frame_image: np.ndarray,
    result: Result | None,
    hud: HudState | None,
    *,
    out: np.ndarray | None = None,
    banner: tuple[str, BannerLevel] | None = None,
    counted: tuple[tuple[str, str], ...] = (),
    style: OverlayStyle = DEFAULT_STYLE,
) -> np.ndarray:
    """Copy ``frame_image`` into ``out`` and draw findings, quality meter, counters, HUD and banner.

    ``counted`` holds (label, detection model name) pairs whose findings are counted in the
    top-right corner (the pipeline passes the labels its detectors have that the style counts,
    e.g. B-lines): the label's clip score where the result has one (a still number over the last
    seconds, the frame's own count small under it), else the count per frame; a count shows "--"
    unless that model is among the result's models.

    ``frame_image`` (uint8 HxW, HxWx1, HxWx3 BGR or HxWx4 BGRA) is never modified. ``out`` is a
    buffer reused across frames: pass back what this returned; a new one is allocated only when
    ``out`` is None or of another size. Findings are skipped for a ``gated`` result, and the meter
    then says "detection paused". A ``no_model`` result (no model is for the frame's modality) gets
    a warning banner saying so, and neither meter nor counters.
    """
    if frame_image.dtype != np.uint8:
        raise ValueError(f"compose needs a uint8 frame image, got {frame_image.dtype}")
    h, w = frame_image.shape[:2]
    if out is None or out.shape != (h, w, 3) or out.dtype != np.uint8:
        out = np.empty((h, w, 3), np.uint8)
    channels = 1 if frame_image.ndim == 2 else frame_image.shape[2]
    if channels == 3:
        np.copyto(out, frame_image)
    elif channels == 1:
        cv2.cvtColor(frame_image, cv2.COLOR_GRAY2BGR, dst=out)
    elif channels == 4:
        cv2.cvtColor(frame_image, cv2.COLOR_BGRA2BGR, dst=out)
    else:
        raise ValueError(f"compose cannot show an image of shape {frame_image.shape}")
    m = metrics(style, h, w)
    if result is not None and result.heatmap is not None and not result.gated:
        draw_heatmap(out, result.heatmap)  # under the boxes (an X-ray finding's, docs/xray.md)
    top = m.banner_h if banner is not None else 0
    # An X-ray's panel: under the "no model" banner where there is one.
    panel_top = top + (m.banner_h if result is not None and result.no_model else 0)
    if result is not None and not result.gated:
        panel = None
        if result.exposure is not None:  # an X-ray: box labels keep out of its panel
            panel = xray_panel_rect(out, result, top=panel_top, style=style)
        draw_findings(out, result.findings, style=style, avoid=panel)
    if banner is not None:
        draw_banner(out, banner[0], banner[1], style=style)
    if result is not None and result.no_model:
        # Nothing analysed this frame: say so, and draw no meter or count that could read as a verdict.
        draw_banner(out, no_model_text(result.modality), "warning", top=top, style=style)
        if result.exposure is not None:  # an X-ray's exposure needs no model
            draw_xray_panel(out, result, top=panel_top, style=style)
        if hud is not None:
            draw_hud(out, hud, style=style)
        return out
    gated = result is not None and result.gated
    if result is not None and result.exposure is not None:  # an X-ray: its panel for the meter
        draw_xray_panel(out, result, top=panel_top, style=style)
    else:
        draw_quality_meter(
            out,
            None if result is None else result.quality,
            top=top,
            note="detection paused" if gated else None,
            style=style,
        )
    ran = set() if result is None or gated else {mi.name for mi in result.models}
    clips = {} if result is None else {c.label: c for c in result.clip_scores}
    # The counters are the ultrasound detector's (B-lines): on an X-ray they would read as a verdict.
    xray = result is not None and result.exposure is not None
    for label, model in () if xray else counted:
        findings = result.findings if result is not None and model in ran else None
        clip = clips.get(label)
        if clip is None:
            draw_counters(out, findings, (label,), top=top, style=style)
        else:
            draw_clip_counter(out, clip, findings, top=top, style=style)
        top += counter_height(m, clip is not None)
    if hud is not None:
        draw_hud(out, hud, style=style)
    return out
