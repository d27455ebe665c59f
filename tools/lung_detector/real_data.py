"""Real lung clips with clip-level labels (``pocus_dev``): the split and the weak labels.

A real clip says only whether B-lines are seen somewhere in it (labels.csv ``B-lines`` 0/1; blank
means unknown). Clips split by patient, stratified by that label, so that the held-out test clips
hold several positives (there are 9 in all): AUC over one positive clip would say nothing.
Training uses the clip label per frame as a weak label for the B-line class only; the test
clips are never seen before the final evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.modelkit.pocus import EXCLUDED, ClipRecord

B_LINE_COLUMN = "B-lines"


@dataclass(frozen=True)
class WeakClip:
    file: str
    b_lines: int  # 1 B-lines seen in the clip, 0 not seen
    frames: np.ndarray  # (N, H, W) uint8 gray, full resolution


def b_line_label(rec: ClipRecord) -> int | None:
    value = rec.row.get(B_LINE_COLUMN, "").strip()
    return int(value) if value in ("0", "1") else None


def split_clips(
    records: list[ClipRecord], seed: int, test_fraction: float, pinned_test: tuple[str, ...] = ()
) -> dict[str, list[str]]:
    """``train`` / ``test`` file lists, whole patients per side, stratified by the B-line label.

    Only videos with a known B-line label take part; stills go to train (one frame says too
    little about a clip). ``pinned_test`` (the bundled demo clip) is always test, so that the demo
    shows unseen data.
    """
    rng = np.random.default_rng(seed)
    usable = [r for r in records if r.file not in EXCLUDED and b_line_label(r) is not None]
    out: dict[str, list[str]] = {"train": [r.file for r in usable if not r.is_video], "test": []}
    videos = [r for r in usable if r.is_video]
    for label in (1, 0):
        groups: dict[str, list[str]] = {}
        for r in videos:
            if b_line_label(r) == label:
                groups.setdefault(r.group, []).append(r.file)
        names = sorted(groups)
        rng.shuffle(names)
        want = round(test_fraction * sum(len(v) for v in groups.values()))
        have = 0
        for g in sorted(names, key=lambda g: not any(f in pinned_test for f in groups[g])):
            pinned = any(f in pinned_test for f in groups[g])
            side = "test" if pinned or have + len(groups[g]) <= want else "train"
            out[side] += groups[g]
            have += len(groups[g]) if side == "test" else 0
    return {k: sorted(v) for k, v in out.items()}


def subsample(frames: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` frames spread evenly over the clip."""
    if len(frames) <= limit:
        return frames
    return frames[np.linspace(0, len(frames) - 1, limit).round().astype(int)]
