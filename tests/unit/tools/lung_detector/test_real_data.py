"""The real-clip split: whole patients per side, stratified by the B-line label, demo clip pinned."""

from __future__ import annotations

import numpy as np

from tools.lung_detector.real_data import b_line_label, split_clips, subsample
from tools.modelkit.pocus import ClipRecord


def _rec(file: str, b_lines: str, kind: str = "video") -> ClipRecord:
    return ClipRecord(
        file=file,
        name=file.rsplit("/", 1)[-1].rsplit(".", 1)[0],
        label="regular",
        probe="convex",
        kind=kind,
        licence="CC BY 4.0",
        licence_link="",
        doi="",
        url="",
        row={"B-lines": b_lines},
    )


def test_split_keeps_patients_whole_pins_the_demo_and_stratifies() -> None:
    recs = [_rec(f"convex/Reg_pat1Image_{i}.mpeg", "0") for i in range(6)]
    recs += [_rec(f"convex/Cov_{i}.mp4", "1") for i in range(10)]
    recs += [_rec(f"convex/Reg_{i}.mp4", "0") for i in range(10)]
    recs += [
        _rec("convex/demo.mp4", "0"),
        _rec("convex/unknown.mp4", ""),
        _rec("convex/still.png", "1", "image"),
    ]
    s = split_clips(recs, seed=3, test_fraction=0.4, pinned_test=("convex/demo.mp4",))
    assert "convex/demo.mp4" in s["test"]
    assert "convex/unknown.mp4" not in s["test"] + s["train"], "a clip with no B-line label takes no part"
    assert "convex/still.png" in s["train"]
    pat1 = {r.file for r in recs if "pat1" in r.file}
    assert pat1 <= set(s["test"]) or pat1 <= set(s["train"]), "one patient never straddles the split"
    pos_test = sum(1 for f in s["test"] if f.startswith("convex/Cov_"))
    assert pos_test == 4, "40 % of the positive clips are held out"
    assert not set(s["test"]) & set(s["train"])
    assert split_clips(recs, 3, 0.4, ("convex/demo.mp4",)) == s, "deterministic for a seed"


def test_b_line_label_reads_0_1_and_blank() -> None:
    assert b_line_label(_rec("a.mp4", "1")) == 1
    assert b_line_label(_rec("a.mp4", "0")) == 0
    assert b_line_label(_rec("a.mp4", "")) is None


def test_subsample_spreads_evenly() -> None:
    frames = np.arange(10)[:, None, None] * np.ones((1, 2, 2), np.uint8)
    assert subsample(frames, 3)[:, 0, 0].tolist() == [0, 4, 9]
    assert len(subsample(frames, 20)) == 10
