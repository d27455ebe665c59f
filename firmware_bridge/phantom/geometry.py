"""Probe geometry, the beam grid (depth x line) and its scan conversion to a Cartesian image.

Cartesian frame, in mm: x lateral (0 at the centre of the skin line), y down (0 at the skin line
under the probe's centre). A convex probe's apex sits ``radius_mm`` above the skin line; its lines
fan out over ``fov_deg``. A linear probe images a ``width_mm`` x ``depth_mm`` rectangle.
The maps are built once per geometry (``ScanConverter``) so a frame costs one ``cv2.remap``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

SOUND_MM_PER_US = 1.54  # speed of sound in soft tissue


@dataclass(frozen=True)
class ProbeGeometry:
    kind: str = "convex"  # "convex" (sector) or "linear" (rectangle)
    depth_mm: float = 100.0
    fov_deg: float = 60.0  # convex only
    radius_mm: float = 40.0  # convex only: apex to skin line
    width_mm: float = 40.0  # linear only
    center_mhz: float = 3.5
    out_h: int = 512
    out_w: int = 512
    n_depth: int = 384  # samples per line of the beam grid
    n_lines: int = 160  # lines (beams) of the beam grid

    def __post_init__(self) -> None:
        if self.kind not in ("convex", "linear"):
            raise ValueError(f"unknown probe kind {self.kind!r}")

    @property
    def dz_mm(self) -> float:
        return self.depth_mm / self.n_depth

    @property
    def wavelength_mm(self) -> float:
        return SOUND_MM_PER_US / self.center_mhz

    def lateral_mm_per_line(self, depth_mm: np.ndarray | float) -> np.ndarray | float:
        """Spacing of neighbouring lines at a depth (grows with depth for a convex probe)."""
        if self.kind == "linear":
            return self.width_mm / self.n_lines + 0.0 * np.asarray(depth_mm)
        return (self.radius_mm + np.asarray(depth_mm)) * np.radians(self.fov_deg) / self.n_lines


class ScanConverter:
    """Beam grid -> Cartesian image maps, the sector mask and the Cartesian position of every cell."""

    def __init__(self, geo: ProbeGeometry) -> None:
        self.geo = geo
        g = geo
        z = (np.arange(g.n_depth, dtype=np.float64) + 0.5) * g.dz_mm
        u = (np.arange(g.n_lines, dtype=np.float64) + 0.5) / g.n_lines
        zz, uu = np.meshgrid(z, u, indexing="ij")
        self.z_mm = zz.astype(np.float32)  # depth of each cell
        self.u = uu.astype(np.float32)  # lateral fraction 0..1 of each cell
        if g.kind == "convex":
            half = np.radians(g.fov_deg) / 2
            th = (uu - 0.5) * 2 * half
            r = g.radius_mm + zz
            gx, gy = r * np.sin(th), r * np.cos(th) - g.radius_mm
            xmax = (g.radius_mm + g.depth_mm) * np.sin(half)
            ytop = g.radius_mm * (np.cos(half) - 1.0)
        else:
            gx, gy = (uu - 0.5) * g.width_mm, zz
            xmax, ytop = g.width_mm / 2, 0.0
        self.x_mm = gx.astype(np.float32)  # Cartesian position of each cell
        self.y_mm = gy.astype(np.float32)
        span_w, span_h = 2 * xmax, g.depth_mm - ytop
        self.pixel_mm = float(max(span_w / (g.out_w - 4), span_h / (g.out_h - 4)))
        self.x0_mm = -g.out_w / 2 * self.pixel_mm  # Cartesian position of pixel (0, 0)
        self.y0_mm = ytop - 2 * self.pixel_mm
        px, py = np.meshgrid(np.arange(g.out_w), np.arange(g.out_h))
        x = self.x0_mm + px * self.pixel_mm
        y = self.y0_mm + py * self.pixel_mm
        if g.kind == "convex":
            rr = np.hypot(x, y + g.radius_mm)
            th = np.arctan2(x, y + g.radius_mm)
            row = (rr - g.radius_mm) / g.dz_mm - 0.5
            col = (th / (2 * half) + 0.5) * g.n_lines - 0.5
            mask = (rr >= g.radius_mm) & (rr <= g.radius_mm + g.depth_mm) & (np.abs(th) <= half)
        else:
            row = y / g.dz_mm - 0.5
            col = (x / g.width_mm + 0.5) * g.n_lines - 0.5
            mask = (y >= 0) & (y <= g.depth_mm) & (np.abs(x) <= g.width_mm / 2)
        self.mask = mask.astype(np.uint8)  # 1 inside the imaged sector
        # Cells at the grid border are clamped so the sector edge is not blended with black.
        row = np.clip(row, 0, g.n_depth - 1)
        col = np.clip(col, 0, g.n_lines - 1)
        row[~mask] = -10
        col[~mask] = -10
        self.map1, self.map2 = cv2.convertMaps(
            col.astype(np.float32), row.astype(np.float32), cv2.CV_16SC2, nninterpolation=False
        )
        self.sector_px = int(mask.sum())

    def convert(self, beam: np.ndarray) -> np.ndarray:
        """Scan-convert a uint8 beam image (n_depth x n_lines) to the output image; black outside."""
        out = cv2.remap(beam, self.map1, self.map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return np.multiply(out, self.mask, out=out)

    def box_of(self, cells: np.ndarray) -> tuple[list[float], list[float]] | None:
        """Bounding box of a boolean beam-grid region: ([x0, y0, x1, y1] pixels, same in mm).

        mm are measured from the image's top-left corner, so mm = pixels x pixel_mm."""
        if not cells.any():
            return None
        pad = 0.5 * max(self.geo.dz_mm, float(np.max(self.geo.lateral_mm_per_line(self.z_mm[cells]))))
        xs, ys = self.x_mm[cells], self.y_mm[cells]
        x0 = (float(xs.min()) - pad - self.x0_mm) / self.pixel_mm
        x1 = (float(xs.max()) + pad - self.x0_mm) / self.pixel_mm
        y0 = (float(ys.min()) - pad - self.y0_mm) / self.pixel_mm
        y1 = (float(ys.max()) + pad - self.y0_mm) / self.pixel_mm
        g = self.geo
        px = [max(0.0, x0), max(0.0, y0), min(g.out_w - 1.0, x1), min(g.out_h - 1.0, y1)]
        px = [round(v, 1) for v in px]
        return px, [round(v * self.pixel_mm, 2) for v in px]

    def fraction_of_sector(self, cells: np.ndarray) -> float:
        """Fraction of the displayed sector's pixels that fall in a beam-grid region."""
        if not cells.any():
            return 0.0
        img = self.convert(cells.astype(np.uint8) * np.uint8(255))
        return float(np.count_nonzero(img >= 128)) / max(self.sector_px, 1)

    def info(self) -> dict[str, Any]:
        """The geometry a Frame carries: pixel spacing, depth and sector parameters (JSON-ready)."""
        g = self.geo
        apex_y = (-g.radius_mm - self.y0_mm) / self.pixel_mm if g.kind == "convex" else None
        return {
            **asdict(g),
            "pixel_spacing_mm": round(self.pixel_mm, 4),
            "apex_px": [round(float(-self.x0_mm / self.pixel_mm), 1), round(float(apex_y), 1)]
            if apex_y is not None
            else None,
            "skin_line_px": round(float(-self.y0_mm / self.pixel_mm), 1),
        }


@lru_cache(maxsize=8)
def scan_converter(geo: ProbeGeometry) -> ScanConverter:
    """One converter per geometry, reused by every frame (the maps cost ~50 ms to build)."""
    return ScanConverter(geo)
