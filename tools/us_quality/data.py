"""The pocus_dev clips for us-quality: each clip's imaged sector and natural shadows, and the split by clip.

The clips are read by ``tools.modelkit.pocus`` (gray, full resolution: the degradations run on
full-size frames, as the runtime would see them); the sector mask and the per-frame shadow
coverage are cached beside the decoded frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tools.modelkit.pocus import DEFAULT_CACHE, EXCLUDED, ClipRecord, cached_arrays, load_frames, load_labels
from tools.us_quality.degrade import natural_shadow, sector_geometry

NATURAL_SHADOW_MAX = 0.4  # frames with more natural (rib) shadow than this are never 'diagnostic'


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
        mask = sector_mask(frames)
        geo = sector_geometry(mask)
        return {"mask": mask, "shadow": np.array([natural_shadow(f, geo) for f in frames], np.float32)}

    z = cached_arrays(data_dir / rec.file, step, cache_dir, "us-quality-sector-v1", derive)
    return ClipData(rec, frames, z["mask"], z["shadow"])


def split_by_clip(
    records: list[ClipRecord],
    seed: int,
    test_frac: float = 0.22,
    val_frac: float = 0.15,
    pinned_test: tuple[str, ...] = (),
) -> dict[str, list[str]]:
    """Assign whole clips (whole patients where known) to train / val / test.

    Stratified by probe, then by clinical label within a probe: for each (probe, label) the groups
    are shuffled and dealt to test and val until each holds its share of that probe's videos.
    Stills always go to train (one frame each; too few to judge anything on).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    videos = [r for r in records if r.is_video and r.file not in EXCLUDED]
    out["train"] += [r.file for r in records if not r.is_video and r.file not in EXCLUDED]
    for probe in sorted({r.probe for r in videos}):
        recs = [r for r in videos if r.probe == probe]
        groups: dict[str, list[ClipRecord]] = {}
        for r in recs:
            groups.setdefault(r.group, []).append(r)
        n = len(recs)
        want = {"test": round(test_frac * n), "val": max(1, round(val_frac * n))}
        have = {"test": 0, "val": 0}
        pinned = [g for g, rs in groups.items() if any(r.file in pinned_test for r in rs)]
        for g in pinned:
            out["test"] += [r.file for r in groups[g]]
            have["test"] += len(groups[g])
        rest = [g for g in groups if g not in pinned]
        # Big groups (patients) first, as they are the hardest to place; within a size, labels are
        # dealt round-robin (label order shuffled) so each split sees several labels.
        by_label: dict[str, list[str]] = {}
        for g in rest:
            by_label.setdefault(groups[g][0].label, []).append(g)
        for gs in by_label.values():
            rng.shuffle(gs)
        labels = list(by_label)
        rng.shuffle(labels)
        order: list[str] = []
        while any(by_label.values()):
            for lab in labels:
                if by_label[lab]:
                    order.append(by_label[lab].pop(0))
        remaining = order
        for split in ("test", "val"):
            while have[split] < want[split]:
                fits = [g for g in remaining if have[split] + len(groups[g]) <= want[split] + 1]
                if not fits:
                    break
                seen = [groups[g][0].label for g in groups if groups[g][0].file in out[split]]
                # Patients (big groups) first, then the label this split has least of.
                g = min(fits, key=lambda g: (-len(groups[g]), seen.count(groups[g][0].label)))
                remaining = [x for x in remaining if x != g]
                out[split] += [r.file for r in groups[g]]
                have[split] += len(groups[g])
        for g in remaining:
            out["train"] += [r.file for r in groups[g]]
    return {k: sorted(v) for k, v in out.items()}


def load_clips(
    data_dir: Path, files: list[str], step: int, cache_dir: Path = DEFAULT_CACHE
) -> list[ClipData]:
    by_file = {r.file: r for r in load_labels(data_dir)}
    return [load_clip(data_dir, by_file[f], step, cache_dir) for f in files]
