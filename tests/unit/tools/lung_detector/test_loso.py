"""Leave-one-source-out: a fold's model trains on the other sources' clips only, and its clip
scores are the mean confident count per frame (needs torch)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tools.lung_detector.dataset import BoxSet, Dataset, RealSet
from tools.lung_detector.recipe import Recipe
from tools.modelkit.grouped import leave_one_source_out
from tools.modelkit.pocus import ClipRecord

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed (tools extra)"
)


def _rec(file: str, site: str, b: str) -> ClipRecord:
    row = {"B-lines": b, "URL (Video Name)": site, "DOI": ""}
    return ClipRecord(file, Path(file).stem, "regular", "convex", "video", "CC BY 4.0", "", "", site, row)


def _real(files: list[str], labels: list[int], per_clip: int = 3) -> RealSet:
    n = len(files) * per_clip
    frames = BoxSet(
        np.zeros((n, 8, 8), np.uint8),
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.int64),
        np.zeros(n + 1, np.int64),
    )
    clip = np.repeat(np.arange(len(files)), per_clip)
    return RealSet(frames, np.ones(n, bool), clip, files, np.asarray(labels, np.int64))


class _Stop(Exception):
    pass


def test_each_fold_trains_on_the_other_sources_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tools.lung_detector.train as train_mod
    from tools.lung_detector import loso

    recs = [_rec(f"c/{s}-{i}.mp4", s, str(i % 2)) for s in ("site-a", "site-b", "site-c") for i in range(3)]
    seen: list[set[str]] = []

    def fake_fit(*args: object, train_clips: set[str] | None = None, **kw: object) -> list:
        assert train_clips is not None
        seen.append(set(train_clips))
        raise _Stop

    monkeypatch.setattr(train_mod, "fit", fake_fit)
    ds = Dataset({}, _real([r.file for r in recs], [int(r.row["B-lines"]) for r in recs]))
    for fold in leave_one_source_out(recs):
        with pytest.raises(_Stop):
            loso._fold_models(Recipe(), ds, fold, tmp_path / fold.name, ("fp32",), lambda _m: None)
        held_out = {r.file for r in fold.test}
        assert seen[-1] == {r.file for r in fold.train} and not seen[-1] & held_out
    assert len(seen) == 3


def test_real_set_indices_keep_to_the_clips_asked_for() -> None:
    rs = _real(["a.mp4", "b.mp4", "c.mp4"], [1, 0, 1])
    rs.trainable[4] = False  # a frame of b.mp4 the teacher found nothing on
    assert rs.indices({"a.mp4"}).tolist() == [0, 1, 2]
    assert rs.indices({"b.mp4"}, trainable=True).tolist() == [3, 5]
    assert len(rs.indices()) == 9


class _Counts:
    """A stand-in detector whose frame i holds i % 3 B-lines."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray, min_confidence: float) -> object:
        from tools.lung_detector.evaluate import Detections

        k = self.calls % 3
        self.calls += 1
        return Detections(np.zeros((k, 4), np.float32), np.full(k, 0.9, np.float32), np.zeros(k, np.int64))


def test_a_clip_score_is_its_mean_confident_count_per_frame() -> None:
    from tools.lung_detector.loso import clip_scores

    ds = Dataset({}, _real(["a.mp4", "b.mp4"], [1, 0]))
    scores = clip_scores(_Counts(), ds, ["a.mp4", "b.mp4"], 0, 0.5)  # type: ignore[arg-type]
    assert scores == pytest.approx({"a.mp4": 1.0, "b.mp4": 1.0})
