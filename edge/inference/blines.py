"""The consensus B-line detector: a physics-based, training-free B-line count in scan-line space.

It follows the consensus definition (Volpicelli et al., 2012): a B-line is a discrete, laser-like,
vertical hyperechoic artefact that arises from the pleural line and reaches the bottom of the
screen without fading. In scan-line coordinates (rows = depth, columns = beams, the output of
``edge.inference.sector.ScanlineMap``) such a line is a vertical column, whatever the probe, so:

1. the pleural line is the brightest row band in the upper part of the image;
2. below it, two depth bands (the upper and the lower half of what is left) are averaged per
   column; a B-line is a column run that stands out of both bands against a wide morphological
   opening (a white top-hat: narrow bright structures only, so the wide bright window between two
   rib shadows is not one), whose lower band keeps at least ``no_fade`` of the upper band's level;
3. confluent B-lines ("white lung") are not narrow: a column run whose lower band stays at least
   ``confluent`` of the pleural line's level, without fading, counts as ``width / b_line_width``
   B-lines.

Normal lung fades below the pleura (A-lines repeat the pleura, dimmer with depth), so none of
these fire on it. The constants are physical proportions of the image, not fitted to labels; they
were set while looking at the development clips (the lung detector's card says so). It labels the
lung detector's real training frames (``tools/lung_detector``), and a detection model whose
manifest asks for it (``postprocess: "consensus_b_lines"``) counts B-lines with it at run time.
Cost: about 0.3 ms for a 128x128 scan-line image.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class TeacherParams:
    pleura_search: tuple[float, float] = (0.04, 0.6)  # share of the depth where the pleura may be
    below_pleura: float = 0.06  # band start under the pleura (share of depth): skip its own blur
    opening: float = 0.15  # top-hat width (share of columns): wider structures are background
    top_hat: float = 0.06  # a B-line stands this far above its surroundings (share of pleura level)
    no_fade: float = 0.6  # lower band at least this share of the upper band
    min_width: float = 0.015  # narrower runs are speckle (share of columns)
    confluent: float = 0.55  # confluent: lower band at least this share of the pleura level
    b_line_width: float = 0.08  # a confluent run counts width / this many B-lines (share of columns)


DEFAULT = TeacherParams()


@dataclass(frozen=True)
class FrameBLines:
    pleura_row: int
    lines: tuple[tuple[int, int], ...]  # column runs [c0, c1) of discrete B-lines
    confluent: tuple[tuple[int, int], ...] = field(default=())  # column runs of confluent B-lines
    count: float = 0.0  # discrete lines + confluent width in B-line widths


def _opening(profile: np.ndarray, width: int) -> np.ndarray:
    """Grey opening of a 1-D profile with a flat window ``width`` wide, mirrored at the ends."""
    kernel = np.ones((1, width), np.uint8)
    row = np.ascontiguousarray(profile, np.float32)[None, :]
    return cv2.morphologyEx(row, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REFLECT)[0]


def percentile(a: np.ndarray, q: float, axis: int) -> np.ndarray:
    """``np.percentile(a, q, axis=axis)`` (method "linear", python ``q``) of a float32 array without
    NaNs, to the bit: the same two order statistics by one partition and numpy's own interpolation
    (float32, weak scalars), without numpy's generic layers, which cost more than the partition on
    a 128-column scan-line image."""
    n = a.shape[axis]
    v = (n - 1) * (q / 100)
    if v >= n - 1:
        return np.asarray(a.max(axis=axis))
    lo = math.floor(v)
    part = np.partition(a, (lo, lo + 1), axis=axis)
    below, above = np.take(part, lo, axis=axis), np.take(part, lo + 1, axis=axis)
    t = v - lo
    diff = above - below
    return above - diff * (1 - t) if t >= 0.5 else below + diff * t


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a 1-D mask."""
    m = np.concatenate(([False], np.asarray(mask, bool), [False]))
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def detect(scan: np.ndarray, valid: np.ndarray | None = None, p: TeacherParams | None = None) -> FrameBLines:
    """B-lines in one scan-line image (rows = depth, uint8 or float, normalised intensity).

    ``valid`` (same shape, bool) marks pixels inside the imaging area; columns mostly outside it
    are never B-lines.
    """
    p = p or DEFAULT
    s = scan.astype(np.float32)
    h, w = s.shape
    col_ok = np.ones(w, bool) if valid is None else valid.mean(0) > 0.9
    sm = cv2.GaussianBlur(s, (0, 0), 1.2)
    # A scan-line image from uint8 has no NaN: numpy's percentile to the bit, at a third of its cost.
    pct = percentile if scan.dtype == np.uint8 else _np_percentile
    every = valid is None  # all columns: no copy to select them
    lo, hi = int(p.pleura_search[0] * h), max(int(p.pleura_search[1] * h), int(p.pleura_search[0] * h) + 1)
    rows = pct(sm[lo:hi][:, col_ok] if not every and col_ok.any() else sm[lo:hi], 70, 1)
    pleura = int(np.argmax(rows)) + lo
    a = min(pleura + max(1, int(p.below_pleura * h)), h - 4)
    b = h - max(1, int(0.04 * h))
    if b - a < 4:
        return FrameBLines(pleura, ())
    m = (a + b) // 2
    upper, lower = sm[a:m].mean(0), sm[m:b].mean(0)
    level = (
        float(_mean(pct(sm[max(pleura - 2, 0) : pleura + 3], 90, 0), None if every else col_ok))
        if every or col_ok.any()
        else 0.0
    )
    if level <= 1e-3:
        return FrameBLines(pleura, ())
    width = max(5, int(p.opening * w))
    hat = np.minimum(upper - _opening(upper, width), lower - _opening(lower, width))
    holds = lower > p.no_fade * upper
    narrow = (hat > p.top_hat * level) & holds & col_ok
    lines = tuple(r for r in runs(narrow) if r[1] - r[0] >= p.min_width * w)
    wide = (lower > p.confluent * level) & holds & col_ok
    confluent = tuple(r for r in runs(wide) if r[1] - r[0] >= p.opening * w)
    count = len(lines) + sum(r[1] - r[0] for r in confluent) / (p.b_line_width * w)
    return FrameBLines(pleura, lines, confluent, float(count))


def _np_percentile(a: np.ndarray, q: float, axis: int) -> np.ndarray:
    return np.asarray(np.percentile(a, q, axis=axis))


def _mean(values: np.ndarray, keep: np.ndarray | None) -> float:
    return float((values if keep is None else values[keep]).mean())


MIN_BOX_W = 3.0  # pixels: a narrower run is widened to this for its box


def line_boxes(found: FrameBLines, h: int, w: int, p: TeacherParams | None = None) -> list[list[float]]:
    """xyxy boxes (scan-line pixels) of the B-lines found: one per discrete line from the pleura to
    the bottom, and a confluent run cut into boxes one B-line wide (a discrete line inside a
    confluent run is left to the run's boxes). ``len(...)`` is the frame's whole-number count."""
    p = p or DEFAULT
    top, bottom = float(found.pleura_row), float(h)
    out = []
    for c0, c1 in found.lines:
        if any(a <= (c0 + c1) / 2 < b for a, b in found.confluent):
            continue
        mid, half = (c0 + c1) / 2, max(MIN_BOX_W, c1 - c0) / 2
        out.append([mid - half, top, mid + half, bottom])
    for c0, c1 in found.confluent:
        k = max(1, round((c1 - c0) / (p.b_line_width * w)))
        edges = np.linspace(c0, c1, k + 1)
        out += [[float(a), top, float(b), bottom] for a, b in itertools.pairwise(edges)]
    return out


# Confidence given to a B-line of the consensus stage: it is a rule, not a probability; 1.0 puts it
# among the confident findings the overlay counts.
CONSENSUS_CONFIDENCE = 1.0
COVER_TOLERANCE = 0.02  # share of the columns: a model box this near a consensus line covers it


def with_consensus(
    boxes: np.ndarray, scores: np.ndarray, ids: np.ndarray, scan: np.ndarray, b_line: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A detector's (boxes xyxy, scores, class ids) on the scan-line image ``scan`` (all in its
    pixels), reconciled with the consensus B-lines found on it: one line, one box (of the
    detector's B-line boxes centred on one consensus line only the best is kept: a wide line
    boxed twice is one line), and a consensus line no B-line box of the detector touches (within
    ``COVER_TOLERANCE`` of the columns) is added. The detector's boxes off every consensus line stay."""
    h, w = scan.shape[:2]
    lines = line_boxes(detect(scan), h, w)
    keep = np.ones(len(boxes), bool)
    own = np.flatnonzero(ids == b_line)
    centres = (boxes[own, 0] + boxes[own, 2]) / 2
    for x0, _, x1, _ in lines:
        on = own[(centres >= x0) & (centres < x1)]
        if len(on) > 1:
            keep[on[on != on[np.argmax(scores[on])]]] = False
    boxes, scores, ids = boxes[keep], scores[keep], ids[keep]
    mine = boxes[ids == b_line]
    tol = COVER_TOLERANCE * w
    extra = [b for b in lines if not np.any((mine[:, 0] - tol <= b[2]) & (b[0] <= mine[:, 2] + tol))]
    if not extra:
        return boxes, scores, ids
    return (
        np.concatenate([boxes, np.asarray(extra, np.float32)]),
        np.concatenate([scores, np.full(len(extra), CONSENSUS_CONFIDENCE, np.float32)]),
        np.concatenate([ids, np.full(len(extra), b_line, np.int64)]),
    )
