"""The imaging area of an ultrasound screen: found once, then used to crop, normalise and resample.

Scanners put their image inside a screen layout (text, colour bars, icons, depth scales, black
borders) that differs by vendor. ``find_sector`` finds the area that holds the image, a convex
fan or a linear rectangle, from one frame or several (several let motion pick the image among
static regions). The search runs on a small copy of the frame: a bright, solid region survives a
morphological opening that removes text and thin marks; the largest such region (or the one that
moves) is taken, its convex hull filled, and a convex fan is fitted where its sides diverge:
lines through the left and right sides meet at the virtual apex, and the near and far radii come
from the hull's distances to it. The fan is then drawn exactly at full resolution, so dark parts
of the image (cysts, the lung below the pleura) stay inside the mask.

``normalise`` sets the brightness from the pixels inside the mask (a capped gain, so a frame
without contact is not blown up into noise); ``ScanlineMap`` resamples a fan to scan-line
coordinates (rows = depth, columns = scan lines), where B-lines are vertical columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edge.inference.resize import area_resize

WORK_SIDE = 320  # the search runs on a copy whose longer side is this many pixels
MIN_AREA = 0.03  # an imaging area covers at least this share of the frame
CONVEX_SPREAD = 0.10  # sides diverging by more than this (dx/dy, right minus left) make a fan
COLOUR_CHROMA = 40  # max-min over B, G, R above this: colour (bars, Doppler, coloured text)
TARGET_P99 = 200.0  # normalise maps the 99th percentile inside the mask to this level
MAX_GAIN = 4.0  # and never amplifies more than this (a frame without contact stays dark)


class SectorNotFound(ValueError):
    """No imaging area in the frames; the message says why."""


@dataclass(frozen=True)
class Sector:
    width: int  # frame size it was found on
    height: int
    kind: Literal["convex", "linear"]
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the imaging area
    mask: np.ndarray  # (H, W) uint8, 255 inside the imaging area
    apex: tuple[float, float] | None = None  # convex: virtual apex (x, y), frame pixels
    angles: tuple[float, float] | None = None  # convex: side angles, radians from straight down
    radii: tuple[float, float] | None = None  # convex: near and far radius from the apex

    @classmethod
    def whole(cls, width: int, height: int) -> Sector:
        """The whole frame as a linear area: the fallback until an imaging area is found."""
        mask = np.full((height, width), 255, np.uint8)
        return cls(width, height, "linear", (0, 0, width, height), mask)


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    raise ValueError(f"find_sector: expected an HxW or HxWx3 frame, got shape {frame.shape}")


def _colour(frame: np.ndarray) -> np.ndarray | None:
    """Where a BGR frame is coloured (chroma above COLOUR_CHROMA), or None for gray frames."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        return None
    b, g, r = cv2.split(frame)
    hi = cv2.max(cv2.max(b, g), r)
    lo = cv2.min(cv2.min(b, g), r)
    return np.asarray(cv2.subtract(hi, lo) > COLOUR_CHROMA)


@dataclass
class _Work:
    """The frames' evidence at work scale: where they are lit, densely lit, and moving."""

    lit: np.ndarray  # any pixel above the screen's dark level (bool)
    bright: np.ndarray  # densely and clearly lit (bool)
    faint: np.ndarray  # densely but faintly lit (bool)
    moving: np.ndarray | None  # changing between frames (bool), None for one frame


def _evidence(frames: Sequence[np.ndarray], scale: float) -> _Work:
    small = []
    colour = None
    for f in frames:
        size = (max(1, round(f.shape[1] * scale)), max(1, round(f.shape[0] * scale)))
        f = cv2.resize(f, size, interpolation=cv2.INTER_AREA)  # everything below at work scale
        small.append(_gray(f))
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
    return _Work(peak > background + 3, dense[0], dense[1] | dense[2], moving)


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


def _region(bright: np.ndarray, faint: np.ndarray, moving: np.ndarray | None) -> np.ndarray:
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


def _outline(hull: np.ndarray, lit: np.ndarray) -> np.ndarray:
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


def _fit_fan(
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
    if arcs is not None:  # the arcs place the apex better than the sides (see _arcs)
        ax, ay = arcs[0], arcs[1]
    # the sides through the outermost lit pixels seen from the apex, the radii likewise
    theta = np.arctan2(xx - ax, yy - ay)
    dist = np.hypot(xx - ax, yy - ay)
    lo, hi = np.percentile(theta, [0.2, 99.8])
    near, far = np.percentile(dist, [0.2, 99.8])
    if arcs is not None and abs(arcs[2] - near) < 0.05 * far:
        near, far = arcs[2], max(far, arcs[3])
    # A fan is at least 20 degrees wide and its apex at most a little more than its depth above
    # its top; sides that barely diverge belong to a rectangle or to a fan cropped at the sides.
    top = float(ys[0]) - 0.1 * (ys[-1] - ys[0]) / 0.6
    if hi - lo < np.radians(20) or top - ay > 1.2 * (far - near) or near > 0.75 * far:
        return None
    return (float(ax), float(ay)), (float(lo), float(hi)), (float(near), float(far))


def fan_mask(
    width: int,
    height: int,
    apex: tuple[float, float],
    angles: tuple[float, float],
    radii: tuple[float, float],
) -> np.ndarray:
    """(H, W) uint8, 255 inside the fan: between the two side angles and the two radii."""
    xs = np.arange(width, dtype=np.float32) - np.float32(apex[0])
    ys = np.arange(height, dtype=np.float32) - np.float32(apex[1])
    dx, dy = np.meshgrid(xs, ys)
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dx, dy)
    inside = (r >= radii[0]) & (r <= radii[1]) & (theta >= angles[0]) & (theta <= angles[1])
    return inside.astype(np.uint8) * np.uint8(255)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    x, y, w, h = cv2.boundingRect(mask)
    return x, y, x + w, y + h


def _rectangle(pixels: np.ndarray) -> tuple[int, int, int, int]:
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


def _face_above(lit: np.ndarray, x: int, y: int, bw: int, bh: int) -> int:
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


def find_sector(frames: Sequence[np.ndarray]) -> Sector:
    """The imaging area of one or more frames of one size (BGR or gray); raises SectorNotFound."""
    frames = list(frames)
    if not frames:
        raise SectorNotFound("no frames given")
    h, w = frames[0].shape[:2]
    if any(f.shape[:2] != (h, w) for f in frames):
        raise ValueError(f"find_sector: frames differ in size (first is {w}x{h})")
    if min(h, w) < 16:
        raise SectorNotFound(f"frame of {w}x{h} is too small to hold an image")
    if all(int(_gray(f).max()) < 16 for f in frames):
        raise SectorNotFound("all black: no pixel brighter than 15")
    scale = min(1.0, WORK_SIDE / max(h, w))
    work = _evidence(frames, scale)
    region = _region(work.bright, work.faint, work.moving)
    outline = _outline(region, work.lit)
    fan = _fit_fan(outline, work.lit)
    if fan is None:
        x0, y0, x1, y1 = _rectangle((work.lit & outline) | (region > 0))
        y0 = _face_above(work.lit, x0, y0, x1 - x0, y1 - y0)
        # work scale -> frame; the dark corners (a dark far field) are as much part of it as the rest
        x0, y0 = max(0, round(x0 / scale)), max(0, round(y0 / scale))
        x1, y1 = min(w, round(x1 / scale)), min(h, round(y1 / scale))
        mask = np.zeros((h, w), np.uint8)
        mask[y0:y1, x0:x1] = 255
        return Sector(w, h, "linear", (x0, y0, x1, y1), mask)
    (ax, ay), angles, (near, far) = fan
    # work-scale pixel centres -> frame pixel coordinates
    apex = ((ax + 0.5) / scale - 0.5, (ay + 0.5) / scale - 0.5)
    radii = (max(0.0, near / scale), far / scale)
    mask = fan_mask(w, h, apex, angles, radii)
    if not mask.any():
        raise SectorNotFound("the fitted fan lies outside the frame")
    return Sector(w, h, "convex", _box(mask), mask, apex, angles, radii)


def gain_for(gray: np.ndarray, mask: np.ndarray | None) -> float:
    """The gain that brings the 99th percentile inside ``mask`` to TARGET_P99, capped at MAX_GAIN."""
    hist = cv2.calcHist([gray], [0], mask, [256], [0, 256]).ravel()
    total = float(hist.sum())
    if total == 0:
        return 1.0
    p99 = int(np.searchsorted(np.cumsum(hist), 0.99 * total))
    return min(MAX_GAIN, TARGET_P99 / max(p99, 1))


def normalise(gray: np.ndarray, sector: Sector) -> np.ndarray:
    """uint8 gray scaled by one gain from the pixels inside the mask; 0 outside the mask.

    Only a gain, no offset: a scanner's gain x0.5..x2 (without clipping) gives the same image, a
    dark frame is brightened at most MAX_GAIN times, and a saturated image stays a flat plateau.
    """
    if gray.shape != sector.mask.shape:
        raise ValueError(f"normalise: gray {gray.shape} does not match the sector's {sector.mask.shape}")
    out = cv2.convertScaleAbs(gray, alpha=gain_for(gray, sector.mask))
    return cv2.bitwise_and(out, sector.mask)


class ScanlineMap:
    """Fan -> scan-line image (rows = depth near->far, columns = scan lines left->right).

    The maps are built once; each frame costs one ``cv2.remap`` at about the source's resolution
    and one area resize to ``size``, so speckle is averaged rather than aliased. A linear area is
    cropped and resized.
    """

    def __init__(self, sector: Sector, size: tuple[int, int]) -> None:
        self.sector = sector
        self.size = size
        w, h = size
        if sector.kind == "convex":
            assert sector.apex is not None and sector.angles is not None and sector.radii is not None
            (a0, a1), (r0, r1) = sector.angles, sector.radii
            # sample at about one frame pixel per step (arc length at the far radius), at most 4x out
            mw = int(np.clip(round(r1 * (a1 - a0)), w, 4 * w))
            mh = int(np.clip(round(r1 - r0), h, 4 * h))
            theta = a0 + (np.arange(mw, dtype=np.float64) + 0.5) / mw * (a1 - a0)
            r = r0 + (np.arange(mh, dtype=np.float64) + 0.5) / mh * (r1 - r0)
            rr, tt = np.meshgrid(r, theta, indexing="ij")
            mx = sector.apex[0] + rr * np.sin(tt)
            my = sector.apex[1] + rr * np.cos(tt)
            self._maps: tuple[np.ndarray, np.ndarray] | None = cv2.convertMaps(
                mx.astype(np.float32), my.astype(np.float32), cv2.CV_16SC2
            )
            self._mid = np.empty((mh, mw), np.uint8)
        else:
            self._maps = None
        self._out = np.empty((h, w), np.uint8)

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """The scan-line image of a gray frame (an internal buffer: copy it to keep it)."""
        s = self.sector
        if gray.shape != (s.height, s.width):
            raise ValueError(
                f"ScanlineMap: frame {gray.shape[::-1]} is not the sector's {s.width}x{s.height}"
            )
        if self._maps is None:
            x0, y0, x1, y1 = s.box
            return area_resize(gray[y0:y1, x0:x1], self.size, dst=self._out)
        cv2.remap(
            gray,
            self._maps[0],
            self._maps[1],
            cv2.INTER_LINEAR,
            dst=self._mid,
            borderMode=cv2.BORDER_CONSTANT,
        )
        return area_resize(self._mid, self.size, dst=self._out)

    def _polar(self) -> tuple[float, float, float, float, float, float]:
        s = self.sector
        assert s.apex is not None and s.angles is not None and s.radii is not None
        return (*s.apex, *s.angles, *s.radii)

    def to_frame(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) scan-line image (col, row) -> frame (x, y), pixel-centre convention."""
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        w, h = self.size
        if self._maps is None:
            x0, y0, x1, y1 = self.sector.box
            sx, sy = (x1 - x0) / w, (y1 - y0) / h
            return np.stack([x0 + (pts[:, 0] + 0.5) * sx - 0.5, y0 + (pts[:, 1] + 0.5) * sy - 0.5], axis=1)
        ax, ay, a0, a1, r0, r1 = self._polar()
        theta = a0 + (pts[:, 0] + 0.5) / w * (a1 - a0)
        r = r0 + (pts[:, 1] + 0.5) / h * (r1 - r0)
        return np.stack([ax + r * np.sin(theta), ay + r * np.cos(theta)], axis=1)

    def from_frame(self, pts: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_frame`: (N, 2) frame (x, y) -> scan-line image (col, row)."""
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        w, h = self.size
        if self._maps is None:
            x0, y0, x1, y1 = self.sector.box
            sx, sy = (x1 - x0) / w, (y1 - y0) / h
            return np.stack([(pts[:, 0] + 0.5 - x0) / sx - 0.5, (pts[:, 1] + 0.5 - y0) / sy - 0.5], axis=1)
        ax, ay, a0, a1, r0, r1 = self._polar()
        dx, dy = pts[:, 0] - ax, pts[:, 1] - ay
        theta = np.arctan2(dx, dy)
        r = np.hypot(dx, dy)
        return np.stack([(theta - a0) / (a1 - a0) * w - 0.5, (r - r0) / (r1 - r0) * h - 0.5], axis=1)
