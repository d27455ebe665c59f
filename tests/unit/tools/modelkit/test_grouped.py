"""tools.modelkit.grouped: sources, splits that never leak a source or a patient, and thresholds that
never see the test fold."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable

import numpy as np
import pytest

from tools.modelkit.grouped import (
    Fold,
    FoldScores,
    b_line_label,
    evaluate_grouped,
    grouped_kfold,
    leave_one_source_out,
    out_of_fold_scores,
    patient_of,
    source_of,
    source_table,
)
from tools.modelkit.pocus import ClipRecord

SPRINGER = "https://theultrasoundjournal.springeropen.com/articles/"
SCIELO = "https://www.scielo.br/"


def rec(name: str, doi: str = "", url: str = "", b_lines: str = "0", **row: str) -> ClipRecord:
    return ClipRecord(
        f"convex/{name}.mp4", name, "regular", "convex", "video", "CC BY 4.0", "", doi, url,
        {"B-lines": b_lines, "DOI": doi, "URL (Video Name)": url, **row},
    )  # fmt: skip


def pocus_dev_shape() -> list[ClipRecord]:
    """Records shaped like the 52 rows of the pocus_dev labels.csv (see its SOURCE.md): 31 clips of one
    site (4 patients with several clips each), the rest from publications, some without a B-line label."""
    recs = [rec(f"Reg_Image_{i}_crop", url="charlotte") for i in range(7)]
    recs += [rec(f"Reg_pat{p}Image_{i}", url="charlotte") for p in range(1, 5) for i in range(6)]
    publications = [  # DOI, URL, B-line labels of its clips
        ("http://dx.doi.org/10.2139/ssrn.3544750", "https://www.researchgate.net/publication/1", "00"),
        ("https://doi.org/10.1186/cc11201", "https://link.springer.com/article/10.1186/cc11201", "1"),
        ("https://doi.org/10.1186/2036-7902-4-16", SPRINGER + "a", "1100"),
        ("https://doi.org/10.1186/s13089-020-00177-4", SPRINGER + "b", "001"),
        ("https://doi.org/10.1186/s13089-020-00171-w", SPRINGER + "c", "11111"),
        ("", "http://www.emdocs.net/ultrasound-for-pneumonia-in-the-ed/", " "),
        ("https://doi.org/10.1590/0100-3984.2020.0051", SCIELO + "scielo.php?x", " "),
        ("https://doi.org/10.1590/0100-3984.2020.0051", SCIELO + "img/revistas/rb", "    "),
    ]
    for j, (doi, url, labels) in enumerate(publications):
        recs += [rec(f"Pub{j}_{i}", doi, url, lab.strip()) for i, lab in enumerate(labels)]
    return recs


def synthetic(seed: int) -> list[ClipRecord]:
    """pocus_dev-like records: a few sources of very different sizes, patients inside the big ones."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(int(rng.integers(3, 9))):
        for i in range(int(rng.integers(1, 25))):
            name = f"Reg_pat{rng.integers(0, 4)}Image_{s}_{i}" if rng.random() < 0.5 else f"S{s}_{i}"
            out.append(rec(name, url=f"site{s}", b_lines=str(rng.integers(0, 2)), Source=f"src{s}"))
    return out


def test_sources_of_the_pocus_dev_shape() -> None:
    recs = pocus_dev_shape()
    assert len(recs) == 52
    assert source_table(recs, b_line_label).splitlines()[2:] == [
        "| doi:10.1186/2036-7902-4-16 | 4 | 2 | 2 | 0 |",
        "| doi:10.1186/cc11201 | 1 | 1 | 0 | 0 |",
        "| doi:10.1186/s13089-020-00171-w | 5 | 5 | 0 | 0 |",
        "| doi:10.1186/s13089-020-00177-4 | 3 | 1 | 2 | 0 |",
        "| doi:10.1590/0100-3984.2020.0051 | 5 | 0 | 0 | 5 |",  # one DOI, two URL hosts: one source
        "| doi:10.2139/ssrn.3544750 | 2 | 0 | 2 | 0 |",  # dx.doi.org written the other way
        "| site:charlotte | 31 | 0 | 31 | 0 |",
        "| web:emdocs.net | 1 | 0 | 0 | 1 |",
        "| **all (8 sources)** | 52 | 9 | 37 | 6 |",
    ]


def test_source_column_wins_and_a_record_without_any_is_refused() -> None:
    assert source_of(rec("a", doi="10.1/x", Source="Lumify site 2")) == "Lumify site 2"
    assert source_of(rec("a", doi="doi:10.1/X")) == "doi:10.1/x"
    with pytest.raises(ValueError, match=r"convex/lost\.mp4: no source"):
        source_of(rec("lost"))


def test_b_line_labels() -> None:
    assert [b_line_label(rec("a", b_lines=v)) for v in ("1", "0", "")] == [1, 0, None]
    with pytest.raises(ValueError, match=r"convex/a\.mp4: labels.csv 'B-lines' is 'yes'"):
        b_line_label(rec("a", b_lines="yes"))


def assert_partition(folds: list[Fold], records: list[ClipRecord], key: Callable[[ClipRecord], str]) -> None:
    """Every record tested exactly once; no key value (source, patient) in a fold's train and test."""
    tested = [r.file for f in folds for r in f.test]
    assert sorted(tested) == sorted(r.file for r in records)
    for f in folds:
        assert f.test, f"{f.name}: empty test fold"
        assert {key(r) for r in f.train}.isdisjoint({key(r) for r in f.test}), f.name
        assert len(f.train) + len(f.test) == len(records)


@pytest.mark.parametrize("seed", range(25))
def test_leave_one_source_out_never_leaks_a_source(seed: int) -> None:
    recs = synthetic(seed)
    folds = leave_one_source_out(recs)
    assert_partition(folds, recs, source_of)
    assert all(len({source_of(r) for r in f.test}) == 1 for f in folds)
    assert {f.scheme for f in folds} == {"leave-one-source-out"}


def test_leave_one_source_out_on_the_pocus_dev_shape() -> None:
    recs = pocus_dev_shape()
    folds = leave_one_source_out(recs)
    assert_partition(folds, recs, source_of)
    charlotte = next(f for f in folds if f.name == "site:charlotte")
    assert len(charlotte.test) == 31 and not any(r.url == "charlotte" for r in charlotte.train)


@pytest.mark.parametrize("seed", range(25))
def test_grouped_kfold_never_leaks_a_patient(seed: int) -> None:
    recs = synthetic(seed)
    k = min(5, len({patient_of(r) for r in recs}))
    folds = grouped_kfold(recs, k, seed=seed, stratify=b_line_label)
    assert len(folds) == k
    assert_partition(folds, recs, patient_of)


def test_grouped_kfold_spreads_the_positives_and_is_deterministic() -> None:
    recs = pocus_dev_shape()
    folds = grouped_kfold(recs, 4, seed=1, stratify=b_line_label)
    assert_partition(folds, recs, patient_of)
    assert sorted(sum(b_line_label(r) == 1 for r in f.test) for f in folds) == [2, 2, 2, 3]
    assert folds == grouped_kfold(recs, 4, seed=1, stratify=b_line_label)
    assert folds != grouped_kfold(recs, 4, seed=2, stratify=b_line_label)
    with pytest.raises(ValueError, match="k=99 needs"):
        grouped_kfold(recs, 99)


def scorer(test_shift: float = 0.0, leak: bool = False) -> Callable[[Fold], FoldScores]:
    """A 'model' whose score is the label plus a per-clip wobble; ``test_shift`` moves only test scores."""

    def score(r: ClipRecord) -> float:
        return (b_line_label(r) or 0) + (zlib.crc32(r.file.encode()) % 97) / 97 * 1.2

    def fit_and_score(fold: Fold) -> FoldScores:
        train = {r.file: score(r) for r in (*fold.train, *(fold.test if leak else ()))}
        return FoldScores(train, {r.file: score(r) + test_shift for r in fold.test})

    return fit_and_score


def test_threshold_does_not_move_when_only_the_test_scores_do() -> None:
    folds = leave_one_source_out(pocus_dev_shape())
    base = evaluate_grouped(folds, scorer(), b_line_label, n_boot=100)
    shifted = evaluate_grouped(folds, scorer(test_shift=5.0), b_line_label, n_boot=100)
    assert [f.threshold for f in base.folds] == [f.threshold for f in shifted.folds]
    assert shifted.sensitivity == 1.0 and shifted.specificity == 0.0  # the fixed threshold, applied


def test_training_scores_of_test_clips_are_refused() -> None:
    with pytest.raises(ValueError, match="training scores given for clips outside its training set"):
        evaluate_grouped(leave_one_source_out(pocus_dev_shape()), scorer(leak=True), b_line_label)


def test_the_report_pools_folds_and_names_what_it_could_not_score() -> None:
    called: list[str] = []

    def fit_and_score(fold: Fold) -> FoldScores:
        called.append(fold.name)
        return scorer()(fold)

    r = evaluate_grouped(leave_one_source_out(pocus_dev_shape()), fit_and_score, b_line_label, n_boot=200)
    assert "web:emdocs.net" not in called and r.skipped == (
        "doi:10.1590/0100-3984.2020.0051",
        "web:emdocs.net",
    )
    assert (r.clips, r.positives, r.negatives) == (46, 9, 37)
    assert r.auc_ci.unit == "clip" and r.auc_ci.low <= r.auc <= r.auc_ci.high
    rows = {s.source: s for s in r.sources}
    assert rows["site:charlotte"].auc is None and rows["site:charlotte"].sensitivity is None
    fold_of = {f.name: f for f in r.folds}
    t = fold_of["site:charlotte"].threshold
    assert rows["site:charlotte"].thresholds == (t,)
    md = r.markdown()
    assert "n/a (one class)" in md and "pooled out-of-fold" in md and "clips are resampled" in md
    assert "rule `youden`, fixed in each fold from the in-sample scores" in md and "Small numbers" in md
    data = json.loads(r.to_json())
    assert data["auc"] == pytest.approx(r.auc, abs=1e-6) and data["sources"][-1]["auc"] is None


def test_enough_sources_resample_sources() -> None:
    recs = [rec(f"c{s}_{i}", b_lines=str(i % 2), Source=f"s{s:02d}") for s in range(12) for i in range(4)]
    r = evaluate_grouped(leave_one_source_out(recs), scorer(), b_line_label, n_boot=200)
    assert r.auc_ci.unit == "source" and r.auc_ci.groups == 12 and "of whole **sources**." in r.markdown()
    assert not math.isnan(r.auc) and all(f.auc is not None for f in r.folds)


def test_out_of_fold_training_scores_come_from_models_blind_to_the_clip_source() -> None:
    recs = synthetic(4)
    seen_by: dict[str, set[str]] = {}

    def inner(fold: Fold) -> FoldScores:
        trained_on = {source_of(r) for r in fold.train}
        for r in fold.test:
            seen_by[r.file] = trained_on
        return FoldScores({}, {r.file: float(len(trained_on)) for r in fold.test})

    scores = out_of_fold_scores(recs, inner)
    assert set(scores) == {r.file for r in recs}
    assert all(source_of(r) not in seen_by[r.file] for r in recs)
    with pytest.raises(ValueError, match="2 or more sources"):
        out_of_fold_scores([r for r in recs if source_of(r) == source_of(recs[0])], inner)


def test_fixed_scores_split_one_score_per_clip_by_fold() -> None:
    from tools.modelkit.grouped import fixed_scores

    recs = [rec(f"c{i}.mp4", url=f"site{i % 2}", b_lines=str(i % 2)) for i in range(4)]
    scores = {r.file: float(i) for i, r in enumerate(recs)}
    for fold in leave_one_source_out(recs):
        got = fixed_scores(scores)(fold)
        assert got.train == {r.file: scores[r.file] for r in fold.train}
        assert got.test == {r.file: scores[r.file] for r in fold.test}
