"""The search behind ``edge.inference.sector.find_sector``: evidence at a small scale, the imaging
region, and the fit of a fan or a rectangle to it (see that module for the method in words)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIDE = 320  # the search runs on a copy whose longer side is this many pixels
MIN_AREA = 0.03  # an imaging area covers at least this share of the frame
CONVEX_SPREAD = 0.10  # sides diverging by more than this (dx/dy, right minus left) make a fan
COLOUR_CHROMA = 40  # max-min over B, G, R above this: colour (bars, Doppler, coloured text)


class SectorNotFound(ValueError):
    """No imaging area in the frames; the message says why."""


def gray_of(frame: np.ndarray) -> np.ndarray:
    """HxW gray as is; HxWx3 is taken as BGR (OpenCV order); HxWx1 is its one channel."""
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    raise ValueError(f"expected HxW or HxWx3 image, got shape {frame.shape}")


def _colour(frame: np.ndarray) -> np.ndarray | None:
    """Where a BGR frame is coloured (chroma above COLOUR_CHROMA), or None for gray frames."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        return None
    b, g, r = cv2.split(frame)
    hi = cv2.max(cv2.max(b, g), r)
    lo = cv2.min(cv2.min(b, g), r)
    return np.asarray(cv2.subtract(hi, lo) > COLOUR_CHROMA)


@dataclass
class Work:
    """The frames' evidence at work scale: where they are lit, densely lit, and moving."""

    lit: np.ndarray  # any pixel above the screen's dark level (bool)
    bright: np.ndarray  # densely and clearly lit (bool)
    faint: np.ndarray  # densely but faintly lit (bool)
    moving: np.ndarray | None  # changing between frames (bool), None for one frame


def evidence(frames: Sequence[np.ndarray], scale: float) -> Work:
    small = []
    colour = None
    for f in frames:
        size = (max(1, round(f.shape[1] * scale)), max(1, round(f.shape[0] * scale)))
        f = cv2.resize(f, size, interpolation=cv2.INTER_AREA)  # everything below at work scale
        small.append(gray_of(f))
        c = _colour(f)
        if c is not None:
            colour = c if colour is None else (colour & c)  # coloured in every frame: layout
    stack = np.stack(small)
    peak = stack.max(axis=0)
    hist = np.bincount(peak.ravel(), minlength=256)
    background = int(np.argmax(hist[:96]))  # the screen's most common dark level
    # Image pixels are lit nearly everywhere around them; text, ticks and icons are strokes with
    # black between them, so their neighbourhood is lit far less densely.
    k = max(3, round(0.03 * min(peak.shape))) | 1
    dense = []
    # clearly lit; faintly lit; and barely above the background but everywhere (a fan whose dark
    # inside is drawn one grey level above a black screen)
    # (only on a screen whose black is clean: compression noise would read as such a region)
    clean = hist[background + 2 : background + 5].sum() < 0.015 * hist[background]
    for level, share in ((12, 0.75), (4, 0.6), (0 if clean else 4, 0.97)):
        lit = (peak > background + level).astype(np.float32)
        if colour is not None:
            lit[colour] = 0
        dense.append(cv2.blur(lit, (k, k)) > share)
    moving = None
    if len(small) > 1:
        spread = cv2.blur((stack.max(axis=0) - stack.min(axis=0)).astype(np.uint8), (5, 5))
        moving = spread > 6
    return Work(peak > background + 3, dense[0], dense[1] | dense[2], moving)


def _opened(mask: np.ndarray) -> np.ndarray:
    k = max(3, round(0.035 * min(mask.shape))) | 1
    return cv2.morphologyEx(
        mask.astype(np.uint8), cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    )


def _hull(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of a mask (of its outer contours' points: the same hull, faster)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(out, cv2.convexHull(np.concatenate(contours)), 255)
    return out


def region_of(bright: np.ndarray, faint: np.ndarray, moving: np.ndarray | None) -> np.ndarray:
    """The imaging area's filled convex hull at work scale (uint8 0/255)."""
    h, w = bright.shape
    opened = _opened(bright)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if n <= 1:
        raise SectorNotFound("no imaging region: nothing bright and solid survives removing text and marks")
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    score = areas.copy()
    if moving is not None and moving.mean() > 0.01:
        score = np.bincount(labels[moving], minlength=n)[1:].astype(np.float64) + 0.05 * areas
    best = 1 + int(np.argmax(score))
    # Pieces of the image split by dark bands (a cyst, a shadow, an anechoic eye) join the best one
    # when they lie mostly within its column span, which grows as they join.
    keep = labels == best
    x0, x1 = stats[best, cv2.CC_STAT_LEFT], stats[best, cv2.CC_STAT_LEFT] + stats[best, cv2.CC_STAT_WIDTH]
    joined = {best}
    for _ in range(3):
        for i in range(1, n):
            if i in joined or stats[i, cv2.CC_STAT_AREA] < 0.005 * h * w:
                continue
            cx0, cw = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_WIDTH]
            if min(x1, cx0 + cw) - max(x0, cx0) > 0.5 * cw:
                joined.add(i)
                keep |= labels == i
                x0, x1 = min(x0, cx0), max(x1, cx0 + cw)
    if keep.sum() < 0.2 * MIN_AREA * h * w:
        raise SectorNotFound(_too_small(keep, "solid bright region"))
    seed = _hull(keep)
    # Dim tissue at the image's sides (below the clear threshold) extends the hull: faintly lit
    # solid regions that touch it.
    n, labels = cv2.connectedComponents(_opened(faint), connectivity=8)
    touching = np.unique(labels[(seed > 0) & (labels > 0)])
    region = _hull((seed > 0) | np.isin(labels, touching))
    if np.count_nonzero(region) < MIN_AREA * h * w:
        raise SectorNotFound(_too_small(region > 0, "imaging region found"))
    return region


def _too_small(region: np.ndarray, what: str) -> str:
    share = 100 * np.count_nonzero(region) / region.size
    return (
        f"no imaging region: the largest {what} covers {share:.1f}% of the frame "
        f"(at least {100 * MIN_AREA:.0f}% expected)"
    )


def _robust_line(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float]:
    """x = slope * y + offset through the points, refitted twice without the outliers."""
    keep = np.ones(len(ys), bool)
    slope, offset = 0.0, float(np.median(xs))
    for _ in range(3):
        if keep.sum() < 4:
            break
        slope, offset = (float(v) for v in np.polyfit(ys[keep], xs[keep], 1))
        res = np.abs(xs - (slope * ys + offset))
        keep = res <= max(1.5, 2.5 * float(np.median(res[keep])))
    return slope, offset


def outline_of(hull: np.ndarray, lit: np.ndarray) -> np.ndarray:
    """The image's own outline (bool): the hull of the faintest lit pixels near the tissue's hull.

    The hull follows the brighter tissue, which may fade before the image's edge (rib shadows at
    the sides of a lung view are black to the bottom, the far field may be dark). The faintest
    lit pixels near it (scan conversion leaves the outside at the screen's dark level) still reach
    the corners, at the skin line and at the far end, and their hull runs along the true sides.
    """
    margin = max(2, round(0.06 * hull.shape[1]))
    near = cv2.dilate(hull, np.ones((1, 2 * margin + 1), np.uint8)) > 0
    return _hull((lit & near) | (hull > 0)) > 0


def _sides(outline: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the outline's upper part (between the arcs) and its left and right edge in each."""
    rows = np.flatnonzero(outline.any(axis=1))
    top, bottom = int(rows[0]), int(rows[-1])
    height = bottom - top + 1
    ys = np.arange(top + round(0.1 * height), top + round(0.7 * height))
    band = outline[ys]
    left = np.argmax(band, axis=1)
    right = band.shape[1] - 1 - np.argmax(band[:, ::-1], axis=1)
    return ys.astype(np.float64), left.astype(np.float64), right.astype(np.float64)


def _arcs(outline: np.ndarray, lit: np.ndarray) -> tuple[float, float, float, float] | None:
    """Apex (x, y) and near and far radius from the top and bottom edges as concentric circles.

    The image's top and bottom edges are arcs around the apex, clearer than its sides where rib
    shadows darken them: x^2 + y^2 = 2 ax x + 2 ay y + c_k is linear in (ax, ay, c_top, c_bottom).
    """
    inside = lit & outline
    cols = np.flatnonzero(inside.any(axis=0))
    if len(cols) < 16:
        return None
    c0, c1 = cols[0], cols[-1]
    xs = np.arange(c0, c1 + 1)
    sub = inside[:, xs]
    has = sub.any(axis=0)
    xs, sub = xs[has], sub[:, has]
    # The top arc is concave seen from the image, so it comes from the lit pixels; the bottom arc
    # is convex, and the outline (a convex hull) follows it, bridging where the far field is dark.
    top = np.argmax(sub, axis=0)
    hull_cols = outline[:, xs]
    bottom = hull_cols.shape[0] - 1 - np.argmax(hull_cols[::-1], axis=0)

    def run(edge: np.ndarray, reach: float) -> np.ndarray:
        # The arc is the smooth run of the edge through the image's middle column: it ends where
        # the edge jumps (a rib's shadow, a dark corner) or turns steeper than 1 (a side; an arc
        # stays flatter for fans up to 90 degrees wide), and where it leaves the frame.
        keep = np.zeros(len(edge), bool)
        centre = int(np.argmin(np.abs(xs - (c0 + c1) / 2)))
        e = edge.astype(np.int64)
        inside_frame = (e > 1) & (e < sub.shape[0] - 2)
        for step in (1, -1):
            i = centre
            while 0 <= i < len(e) and abs(xs[i] - xs[centre]) <= reach * (c1 - c0):
                j = i - step
                if j >= 0 and j < len(e) and i != centre and abs(e[i] - e[j]) > 2:
                    break
                keep[i] = inside_frame[i]
                i += step
        slope = np.abs(np.convolve(e.astype(np.float64), [0.25, 0, 0, 0, -0.25], mode="same"))
        return keep & (slope < 1.0)

    t_ok = run(top, 0.45)
    b_ok = run(bottom, 0.45)
    if min(t_ok.sum(), b_ok.sum()) < 8:
        return None
    x = np.concatenate([xs[t_ok], xs[b_ok]]).astype(np.float64)
    y = np.concatenate([top[t_ok], bottom[b_ok]]).astype(np.float64)
    is_top = np.concatenate([np.ones(int(t_ok.sum())), np.zeros(int(b_ok.sum()))])
    a = np.stack([2 * x, 2 * y, is_top, 1 - is_top], axis=1)
    b = x * x + y * y
    keep = np.ones(len(x), bool)
    sol = np.zeros(4)
    for _ in range(3):
        sol = np.linalg.lstsq(a[keep], b[keep], rcond=None)[0]
        r = np.sqrt(np.maximum(sol[2:] + sol[0] ** 2 + sol[1] ** 2, 0))
        res = np.abs(np.hypot(x - sol[0], y - sol[1]) - np.where(is_top > 0, r[0], r[1]))
        keep = res <= max(1.0, 2.5 * float(np.median(res[keep])))
    if float(np.median(res[keep])) > 1.5 or not (0 <= r[0] < r[1]):
        return None
    return float(sol[0]), float(sol[1]), float(r[0]), float(r[1])


def fit_fan(
    outline: np.ndarray, lit: np.ndarray
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None:
    """(apex, angles, radii) of a fan whose sides diverge, at work scale; None for a rectangle
    (or a fan cropped so that its sides are not seen, which is then taken as one)."""
    ys, left, right = _sides(outline)
    if len(ys) < 8:
        return None
    bl, al = _robust_line(ys, left)
    br, ar = _robust_line(ys, right)
    if br - bl < CONVEX_SPREAD or bl > 0.02 or br < -0.02:
        return None
    ay = (al - ar) / (br - bl)
    ax = al + bl * ay
    yy, xx = np.nonzero(outline & lit)
    arcs = _arcs(outline, lit)
    rows = np.flatnonzero(outline.any(axis=1))
    top_row = outline[rows[0] : rows[0] + max(2, round(0.03 * len(rows)))]
    tip = np.flatnonzero(top_row.any(axis=0))
    pointed = tip[-1] - tip[0] < 0.1 * (right.max() - left.min())
    if pointed:  # a phased array's fan comes to a point (no top arc): the sides meet at its tip
        arcs = None
        if np.hypot(ax - tip.mean(), ay - rows[0]) > 0.1 * len(rows):
            ax, ay = float(tip.mean()), float(rows[0])
    elif arcs is not None:  # the arcs place the apex better than the sides (see _arcs)
        ax, ay = arcs[0], arcs[1]
    # the sides through the outermost lit pixels seen from the apex, the radii likewise
    theta = np.arctan2(xx - ax, yy - ay)
    dist = np.hypot(xx - ax, yy - ay)
    lo, hi = np.percentile(theta, [0.2, 99.8])
    near, far = np.percentile(dist, [0.2, 99.8])
    if arcs is not None and abs(arcs[2] - near) < 0.05 * far:
        near, far = arcs[2], max(far, arcs[3])
    if pointed:
        near = 0.0
    # A fan is at least 20 degrees wide and its apex at most a little more than its depth above
    # its top; sides that barely diverge belong to a rectangle or to a fan cropped at the sides.
    top = float(ys[0]) - 0.1 * (ys[-1] - ys[0]) / 0.6
    if hi - lo < np.radians(20) or top - ay > 1.2 * (far - near) or near > 0.75 * far:
        return None
    return (float(ax), float(ay)), (float(lo), float(hi)), (float(near), float(far))


def rectangle_of(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 (exclusive) of a rectangular image: the edges that a tenth of its rows and
    columns reach, so text touching one side (a patient's name beside the image) is left out."""
    rows = np.flatnonzero(pixels.any(axis=1))
    band = pixels[rows]
    left = np.argmax(band, axis=1)
    right = band.shape[1] - np.argmax(band[:, ::-1], axis=1)
    x0, x1 = int(np.percentile(left, 10)), int(np.ceil(np.percentile(right, 90)))
    cols = pixels[:, x0:x1]
    cols = cols[:, cols.any(axis=0)]
    top = np.argmax(cols, axis=0)
    bottom = cols.shape[0] - np.argmax(cols[::-1], axis=0)
    return x0, int(np.percentile(top, 10)), x1, int(np.ceil(np.percentile(bottom, 90)))


def face_above(lit: np.ndarray, x: int, y: int, bw: int, bh: int) -> int:
    """The top of a rectangle whose upper part is black (water, gel, an anechoic phantom): a line
    lit across the rectangle's width, and not beyond it (a screen divider), up to twice its
    height above it, marks the probe's face."""
    margin = max(2, round(0.05 * bw))
    lo, hi = max(0, x - 3 * margin), min(lit.shape[1], x + bw + 3 * margin)
    for row in range(max(0, y - 2 * bh), y):
        across = lit[row, x + margin : x + bw - margin].mean() if bw > 2 * margin else 0.0
        beyond = np.concatenate([lit[row, lo : x - margin], lit[row, x + bw + margin : hi]])
        if across > 0.8 and (beyond.size == 0 or beyond.mean() < 0.2):
            return row
    return y
