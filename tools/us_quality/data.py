"""The pocus_dev clips for us-quality: each clip's imaged sector and natural shadows.

The clips are read by ``tools.modelkit.pocus`` (gray, full resolution: the degradations run on
full-size frames, as the runtime would see them); the sector mask and the per-frame shadow
coverage are cached beside the decoded frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.inference.sector import SectorNotFound, find_sector
from tools.modelkit.pocus import DEFAULT_CACHE, ClipRecord, cached_arrays, load_frames, load_labels
from tools.us_quality.degrade import natural_shadow, sector_geometry

# Real rib shadows are what an intercostal lung view shows (2.x): an untouched frame stands for
# 'diagnostic' unless the whole sector is dark (1.x left out frames over 0.4, which taught the model
# to call good views with two rib shadows 'shadow').
NATURAL_SHADOW_MAX = 1.0


def sector_mask(frames: np.ndarray) -> np.ndarray:
    """The imaged sector: pixels that are non-dark at some time, closed, filled and made convex.

    The time maximum finds the whole sector even where the far field is dark in most frames; the
    convex hull of the largest blob fills dark holes (shadows) and drops text outside the sector.
    """
    peak = np.percentile(frames, 98, axis=0).astype(np.uint8) if len(frames) > 1 else frames[0]
    peak = cv2.GaussianBlur(peak, (0, 0), sigmaX=max(2.0, peak.shape[1] / 80))
    fg = (peak > 6).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, k)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    h, w = fg.shape
    if n <= 1:
        return np.ones((h, w), bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    pts = cv2.findNonZero((lab == biggest).astype(np.uint8))
    hull = cv2.convexHull(pts)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def clip_sector(frames: np.ndarray, n: int = 16) -> np.ndarray:
    """The clip's imaging area as the runtime finds it (``find_sector`` on up to ``n`` evenly spaced
    frames, so motion separates image from layout); :func:`sector_mask` where it finds none."""
    idx = np.unique(np.linspace(0, len(frames) - 1, min(n, len(frames))).astype(int))
    try:
        return find_sector([frames[i] for i in idx]).mask > 0
    except SectorNotFound:
        return sector_mask(frames)


@dataclass
class ClipData:
    record: ClipRecord
    frames: np.ndarray  # (N, H, W) uint8 gray
    mask: np.ndarray  # (H, W) bool
    shadow: np.ndarray  # (N,) natural shadow coverage of each frame, see degrade.natural_shadow

    @property
    def diagnostic_ok(self) -> np.ndarray:
        """Frames that may stand for the diagnostic class: natural shadows below NATURAL_SHADOW_MAX."""
        return self.shadow < NATURAL_SHADOW_MAX


def load_clip(data_dir: Path, rec: ClipRecord, step: int, cache_dir: Path = DEFAULT_CACHE) -> ClipData:
    """Every ``step``-th frame, the clip's sector mask and each frame's natural shadow (all cached)."""
    frames = load_frames(data_dir, rec, step, cache_dir)

    def derive() -> dict[str, np.ndarray]:
        mask = clip_sector(frames)
        geo = sector_geometry(mask)
        return {"mask": mask, "shadow": np.array([natural_shadow(f, geo) for f in frames], np.float32)}

    z = cached_arrays(data_dir / rec.file, step, cache_dir, "us-quality-sector-v2", derive)
    return ClipData(rec, frames, z["mask"], z["shadow"])


def load_clips(
    data_dir: Path, files: list[str], step: int, cache_dir: Path = DEFAULT_CACHE
) -> list[ClipData]:
    by_file = {r.file: r for r in load_labels(data_dir)}
    return [load_clip(data_dir, by_file[f], step, cache_dir) for f in files]
