"""The imaging area of an ultrasound screen: found once, then used to crop, normalise and resample.

Scanners put their image inside a screen layout (text, colour bars, icons, depth scales, black
borders) that differs by vendor. ``find_sector`` finds the area that holds the image, a convex
fan or a linear rectangle, from one frame or several (several let motion pick the image among
static regions). The search (``edge.inference.sector_search``) runs on a copy 320 pixels wide:
densely lit, grey regions survive an opening that removes text, marks and colour bars; the largest
(or the moving) one, with faint tissue touching it, gives a hull, and the faintest lit pixels near
it give the image's outline. Where the outline's sides diverge it is a fan: its apex and near and
far radii from its top and bottom arcs as concentric circles (the sides of a lung view hide in rib
shadows), its side angles from the outermost lit pixels seen from the apex. Otherwise it is a
rectangle, its edges those a tenth of its rows and columns reach. The area is drawn exactly at
full resolution, so dark parts of the image (cysts, the lung below the pleura) stay inside it.

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
from edge.inference.sector_search import (
    WORK_SIDE,
    SectorNotFound,
    evidence,
    face_above,
    fit_fan,
    gray_of,
    outline_of,
    rectangle_of,
    region_of,
)

__all__ = ["ScanlineMap", "Sector", "SectorNotFound", "fan_mask", "find_sector", "gain_for", "normalise"]

TARGET_P99 = 200.0  # normalise maps the 99th percentile inside the mask to this level
MAX_GAIN = 4.0  # and never amplifies more than this (a frame without contact stays dark)


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
    if all(int(gray_of(f).max()) < 16 for f in frames):
        raise SectorNotFound("all black: no pixel brighter than 15")
    scale = min(1.0, WORK_SIDE / max(h, w))
    work = evidence(frames, scale)
    region = region_of(work.bright, work.faint, work.moving)
    outline = outline_of(region, work.lit)
    fan = fit_fan(outline, work.lit)
    if fan is None:
        x0, y0, x1, y1 = rectangle_of((work.lit & outline) | (region > 0))
        y0 = face_above(work.lit, x0, y0, x1 - x0, y1 - y0)
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
        # What the output depends on: two maps with one key give the same image of a frame.
        self.key = (
            sector.kind,
            sector.box,
            sector.apex,
            sector.angles,
            sector.radii,
            sector.width,
            sector.height,
            size,
        )
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
