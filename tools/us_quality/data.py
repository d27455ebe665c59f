"""Reading the pocus_dev clips, estimating each clip's imaged sector, and splitting by clip.

Frames are cached as grayscale uint8 ``.npz`` under a temp folder (never in the repo), at full
resolution: the degradations run on full-size frames, as the runtime would see them.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tools.us_quality.degrade import natural_shadow, sector_geometry
from tools.us_quality.preprocess import to_gray

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_CACHE = Path("/tmp/us_quality_cache")
FRAME_STEP = 3  # every 3rd frame of each clip is decoded (neighbouring frames are near-duplicates)
NATURAL_SHADOW_MAX = 0.4  # frames with more natural (rib) shadow than this are never 'diagnostic'
MAX_SIDE = 640  # larger stills (figures up to 2700 px) are shrunk to a scanner-like display size

# Clips left out of training and evaluation, with the reason (written to the model card).
EXCLUDED: dict[str, str] = {
    "convex/Cov_recommendations_likebutterfly_mov5.mov": (
        "zoomed-in, heavily smoothed and washed-out display: as a 'diagnostic' example it would teach "
        "the model that a saturated frame is fine, the opposite of the gain_high class"
    ),
}


@dataclass(frozen=True)
class ClipRecord:
    """One row of labels.csv."""

    file: str  # path relative to the data folder
    name: str
    label: str  # clinical label (COVID-19 / regular / ...), used only to stratify the split
    probe: str  # convex / linear
    kind: str  # video / image
    licence: str
    licence_link: str
    doi: str
    url: str
    row: dict[str, str]

    @property
    def is_video(self) -> bool:
        return not self.file.lower().endswith(IMAGE_SUFFIXES)

    @property
    def group(self) -> str:
        """Clips of one patient share a group so that a patient never straddles two splits."""
        m = re.match(r"Reg_(pat\d+)Image_", self.name)
        return m.group(1) if m else self.file


def load_labels(data_dir: Path) -> list[ClipRecord]:
    with (data_dir / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        ClipRecord(
            file=r["file"],
            name=r["Filename"],
            label=r["Label"],
            probe=r["Probe"].strip().lower(),
            kind="video" if not r["file"].lower().endswith(IMAGE_SUFFIXES) else "image",
            licence=r["License"],
            licence_link=r["LinkToLicense"],
            doi=r["DOI"],
            url=r["URL (Video Name)"],
            row=dict(r),
        )
        for r in rows
    ]


def _fit(gray: np.ndarray) -> np.ndarray:
    h, w = gray.shape
    f = MAX_SIDE / max(h, w)
    if f >= 1:
        return gray
    return cv2.resize(gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def read_gray_frames(path: Path, step: int) -> np.ndarray:
    """Every ``step``-th frame of a video (or the one still) as gray uint8, shape (N, H, W)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"cannot read image {path}")
        return _fit(to_gray(img))[None]
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                frames.append(_fit(to_gray(frame)))
            i += 1
    finally:
        cap.release()
    if not frames:
        raise OSError(f"no frames decoded from {path}")
    return np.stack(frames)


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
    """Decode (or read from the cache) every ``step``-th frame and the clip's sector mask."""
    path = data_dir / rec.file
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{step}|v4"
    key = hashlib.sha256(ident.encode()).hexdigest()[:20]
    cache = cache_dir / f"{path.stem}-{key}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return ClipData(rec, z["frames"], z["mask"], z["shadow"])
    frames = read_gray_frames(path, step)
    mask = sector_mask(frames)
    geo = sector_geometry(mask)
    shadow = np.array([natural_shadow(f, geo) for f in frames], np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, frames=frames, mask=mask, shadow=shadow)
    tmp.replace(cache)
    return ClipData(rec, frames, mask, shadow)


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
