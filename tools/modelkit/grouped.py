"""Grouped validation: folds that never split a source (publication / site / scanner) or a patient, and
clip-level figures with every threshold fixed on the training folds only.

A model that has seen clips of a source has seen its scanner, its presets and its operators, so a clip of
that source in the test fold measures less than a new hospital will see. Hence:

    source_of(record) -> str             the record's source: its labels.csv ``Source`` column if any,
                                         a site named in the URL column ("charlotte" -> "site:charlotte"),
                                         else the publication's DOI ("doi:10..."), else the URL's host
                                         ("web:emdocs.net")
    patient_of(record) -> str            ``ClipRecord.group`` (the patient where labels.csv names one)
    b_line_label(record) -> int | None   labels.csv ``B-lines``: 1, 0, or None when blank (unknown)
    leave_one_source_out(records, key=source_of) -> list[Fold]
    grouped_kfold(records, k, key=patient_of, seed=0, stratify=None) -> list[Fold]
    Fold(name, train, test, scheme, held_out)   records as tuples; ``held_out`` never straddles them
    evaluate_grouped(folds, fit_and_score, label_of, rule="youden", threshold_from="the in-sample scores",
                     group_of=source_of, n_boot=2000, seed=0, min_groups=10) -> GroupedReport
        ``fit_and_score(fold) -> FoldScores(train={file: score}, test={file: score})``: train on
        ``fold.train`` only and score its training clips and its test clips. This module, not the
        caller, fixes each fold's threshold from the training scores (``fix_threshold``) and applies it
        unchanged to the test scores; training scores of a clip outside ``fold.train`` are refused.
        ``threshold_from`` says which training scores they are (the clips' own in-sample scores, or
        out-of-fold scores from a split inside the training sources, less optimistic); the card quotes it.
    out_of_fold_scores(records, fit_and_score, key=source_of) -> dict[str, float]
        scores of ``fold.train`` from inner leave-one-source-out models, for ``threshold_from``
    GroupedReport.markdown() / .to_dict() / .to_json()
    source_table(records, label_of) -> str   the data set's sources as a markdown table

The statistics (``auc``, ``sensitivity``, ``specificity``, ``fix_threshold``, ``bootstrap_ci``,
``rate_by_group``) are in ``grouped_stats``; the report's rows and its card text in ``grouped_report``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from tools.modelkit.grouped_report import FoldRow, GroupedReport, SourceRow
from tools.modelkit.grouped_stats import (
    Interval,
    auc,
    bootstrap_ci,
    fix_threshold,
    sensitivity,
    specificity,
)
from tools.modelkit.pocus import ClipRecord

_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)", re.IGNORECASE)


def source_of(record: ClipRecord) -> str:
    explicit = record.row.get("Source", "").strip()
    if explicit:
        return explicit
    url = record.url.strip()
    if url and "://" not in url and "." not in url:
        return f"site:{url.lower()}"  # a site's name, not an address: its clips share scanner and team
    doi = _DOI_PREFIX.sub("", record.doi.strip()).lower()
    if doi:
        return f"doi:{doi}"
    host = (urlparse(url).hostname or "").removeprefix("www.")
    if host:
        return f"web:{host}"
    raise ValueError(
        f"{record.file}: no source: labels.csv 'Source', 'DOI' and 'URL (Video Name)' are all blank"
    )


def patient_of(record: ClipRecord) -> str:
    return record.group


def b_line_label(record: ClipRecord) -> int | None:
    if "B-lines" not in record.row:
        raise ValueError(f"{record.file}: labels.csv has no 'B-lines' column")
    value = record.row["B-lines"].strip()
    if value in ("0", "1"):
        return int(value)
    if value == "":
        return None
    raise ValueError(f"{record.file}: labels.csv 'B-lines' is {value!r}, expected 0, 1 or blank")


@dataclass(frozen=True)
class Fold:
    name: str
    train: tuple[ClipRecord, ...]
    test: tuple[ClipRecord, ...]
    scheme: str = ""  # "leave-one-source-out", "5-fold by patient", ...: the report quotes it
    held_out: str = ""  # what never straddles train and test: "source", "patient", or the key's name


def _key_name(key: Callable[[ClipRecord], str]) -> str:
    if key is source_of:
        return "source"
    if key is patient_of:
        return "patient"
    return str(getattr(key, "__name__", "group"))


def _make_fold(
    name: str,
    scheme: str,
    records: Sequence[ClipRecord],
    test_keys: set[str],
    key: Callable[[ClipRecord], str],
) -> Fold:
    test = tuple(r for r in records if key(r) in test_keys)
    train = tuple(r for r in records if key(r) not in test_keys)
    return Fold(name, train, test, scheme, _key_name(key))


def leave_one_source_out(
    records: Iterable[ClipRecord], key: Callable[[ClipRecord], str] = source_of
) -> list[Fold]:
    """One fold per source (sorted by name): that source's clips are the test fold, all others train."""
    recs = list(records)
    scheme = f"leave-one-{_key_name(key)}-out"
    return [_make_fold(s, scheme, recs, {s}, key) for s in sorted({key(r) for r in recs})]


def grouped_kfold(
    records: Iterable[ClipRecord],
    k: int,
    key: Callable[[ClipRecord], str] = patient_of,
    seed: int = 0,
    stratify: Callable[[ClipRecord], object] | None = None,
) -> list[Fold]:
    """``k`` folds with every group (patient by default) whole in one test fold.

    Groups are shuffled by ``seed``, then taken largest first, each into the fold holding fewest clips
    of its majority ``stratify`` class (then fewest clips), so classes spread as evenly as whole groups
    allow; an empty fold always wins, so every fold gets a group.
    """
    recs = list(records)
    groups: dict[str, list[ClipRecord]] = {}
    for r in recs:
        groups.setdefault(key(r), []).append(r)
    if not 2 <= k <= len(groups):
        raise ValueError(f"grouped_kfold: k={k} needs 2 <= k <= {len(groups)} (the number of groups)")
    names = sorted(groups)
    np.random.default_rng(seed).shuffle(names)
    names.sort(key=lambda g: -len(groups[g]))  # stable: equal sizes keep the shuffled order

    def stratum(g: str) -> str:
        if stratify is None:
            return ""
        counts: dict[str, int] = {}
        for r in groups[g]:
            counts[repr(stratify(r))] = counts.get(repr(stratify(r)), 0) + 1
        return max(sorted(counts), key=lambda c: counts[c])

    per_class: list[dict[str, int]] = [{} for _ in range(k)]
    sizes = [0] * k
    members: list[set[str]] = [set() for _ in range(k)]
    for g in names:
        s = stratum(g)
        best = min(range(k), key=lambda i: (per_class[i].get(s, 0), sizes[i], i))
        members[best].add(g)
        per_class[best][s] = per_class[best].get(s, 0) + len(groups[g])
        sizes[best] += len(groups[g])
    scheme = f"{k}-fold by {_key_name(key)}" + (" (stratified)" if stratify is not None else "")
    return [_make_fold(f"fold {i + 1}/{k}", scheme, recs, members[i], key) for i in range(k)]


@dataclass(frozen=True)
class FoldScores:
    """Scores of one fold's model, keyed by ``record.file``: its training clips' and its test clips'."""

    train: Mapping[str, float]
    test: Mapping[str, float]


def fixed_scores(scores: Mapping[str, float]) -> Callable[[Fold], FoldScores]:
    """``fit_and_score`` for a scorer that learns nothing from the folds (a rule, or a model that
    saw every clip, which the report's reader must be told): each clip's one score, split by fold."""

    def fit_and_score(fold: Fold) -> FoldScores:
        return FoldScores(
            train={r.file: scores[r.file] for r in fold.train},
            test={r.file: scores[r.file] for r in fold.test},
        )

    return fit_and_score


def out_of_fold_scores(
    records: Sequence[ClipRecord],
    fit_and_score: Callable[[Fold], FoldScores],
    key: Callable[[ClipRecord], str] = source_of,
) -> dict[str, float]:
    """Each record's score from a model that never saw its source (leave-one-source-out inside
    ``records``): training scores for a threshold without the optimism of in-sample scores. Use it
    inside a fold's ``fit_and_score`` on ``fold.train`` and pass ``threshold_from="out-of-fold scores"``.
    """
    inner_folds = leave_one_source_out(records, key)
    if len(inner_folds) < 2:
        raise ValueError(f"out_of_fold_scores: needs records of 2 or more sources, got {len(inner_folds)}")
    scores: dict[str, float] = {}
    for inner in inner_folds:
        result = fit_and_score(inner)
        scores.update({r.file: float(result.test[r.file]) for r in inner.test})
    return scores


def _opt(v: float) -> float | None:
    return None if math.isnan(v) else v


def evaluate_grouped(
    folds: Sequence[Fold],
    fit_and_score: Callable[[Fold], FoldScores],
    label_of: Callable[[ClipRecord], int | None],
    rule: str = "youden",
    threshold_from: str = "the in-sample scores",
    group_of: Callable[[ClipRecord], str] = source_of,
    n_boot: int = 2000,
    seed: int = 0,
    min_groups: int = 10,
) -> GroupedReport:
    """Score every fold with its own model and threshold; pool the test clips into one report.

    A fold whose test clips are all unlabelled (``label_of`` None) is skipped and named in the report;
    ``fit_and_score`` is not called for it. Unlabelled training clips may be scored; they are ignored.
    """
    labels: list[int] = []
    scores: list[float] = []
    margins: list[float] = []  # score - the threshold of the clip's fold: called positive when >= 0
    groups: list[str] = []
    tested: set[str] = set()
    fold_rows: list[FoldRow] = []
    skipped: list[str] = []
    thresholds_of: dict[str, set[float]] = {}
    if len({(f.scheme, f.held_out) for f in folds}) != 1:
        raise ValueError("evaluate_grouped: the folds come from different splits (scheme or held_out differ)")
    for fold in folds:
        train_files = {r.file for r in fold.train}
        overlap = train_files & {r.file for r in fold.test}
        if overlap:
            raise ValueError(f"fold {fold.name}: clips in both train and test: {sorted(overlap)[:3]}")
        known = {r.file: lab for r in (*fold.train, *fold.test) if (lab := label_of(r)) is not None}
        test = [r for r in fold.test if r.file in known]
        if not test:
            skipped.append(fold.name)
            continue
        result = fit_and_score(fold)
        foreign = set(result.train) - train_files
        if foreign:
            raise ValueError(
                f"fold {fold.name}: training scores given for clips outside its training set "
                f"(the threshold must not see them): {sorted(foreign)[:3]}"
            )
        train = [r.file for r in fold.train if r.file in result.train and r.file in known]
        threshold = fix_threshold([known[f] for f in train], [result.train[f] for f in train], rule)
        missing = [r.file for r in test if r.file not in result.test]
        if missing:
            raise ValueError(f"fold {fold.name}: no test score for {missing[:3]}")
        for r in test:
            if r.file in tested:
                raise ValueError(f"{r.file}: in more than one test fold")
            tested.add(r.file)
            labels.append(known[r.file])
            scores.append(float(result.test[r.file]))
            margins.append(scores[-1] - threshold)
            groups.append(group_of(r))
            thresholds_of.setdefault(groups[-1], set()).add(threshold)
        fold_auc = auc([known[r.file] for r in test], [result.test[r.file] for r in test])
        fold_rows.append(FoldRow(fold.name, threshold, len(train), len(test), _opt(fold_auc)))
    if not labels:
        raise ValueError("evaluate_grouped: no fold has a labelled test clip")
    y, s, m, g = np.array(labels), np.array(scores), np.array(margins), np.array(groups)

    def ci(values: np.ndarray, stat: Callable[[np.ndarray, np.ndarray], float]) -> Interval:
        return bootstrap_ci(y, values, groups, stat, n_boot, seed, min_groups)

    def sens0(yy: np.ndarray, mm: np.ndarray) -> float:
        return sensitivity(yy, mm, 0.0)

    def spec0(yy: np.ndarray, mm: np.ndarray) -> float:
        return specificity(yy, mm, 0.0)

    rows = []
    for src in sorted(set(groups)):
        sel = g == src
        yy, ss, mm = y[sel], s[sel], m[sel]
        rows.append(
            SourceRow(
                src,
                int(sel.sum()),
                int(yy.sum()),
                int((yy == 0).sum()),
                _opt(auc(yy, ss)),
                _opt(sens0(yy, mm)),
                _opt(spec0(yy, mm)),
                tuple(sorted(thresholds_of[src])),
            )
        )
    return GroupedReport(
        folds[0].scheme,
        folds[0].held_out,
        rule,
        threshold_from,
        len(y),
        int(y.sum()),
        int((y == 0).sum()),
        auc(y, s),
        ci(s, auc),
        sens0(y, m),
        ci(m, sens0),
        spec0(y, m),
        ci(m, spec0),
        tuple(fold_rows),
        tuple(rows),
        tuple(skipped),
        n_boot,
        seed,
    )


def source_table(records: Iterable[ClipRecord], label_of: Callable[[ClipRecord], int | None]) -> str:
    """Per source: clips, with the finding, without, and unknown (blank label)."""
    counts: dict[str, list[int]] = {}
    for r in records:
        c = counts.setdefault(source_of(r), [0, 0, 0, 0])
        lab = label_of(r)
        c[0] += 1
        c[{1: 1, 0: 2, None: 3}[lab]] += 1
    lines = ["| source | clips | with | without | unknown |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {s} | {c[0]} | {c[1]} | {c[2]} | {c[3]} |" for s, c in sorted(counts.items())]
    total = [sum(c[i] for c in counts.values()) for i in range(4)]
    lines.append(f"| **all ({len(counts)} sources)** | {total[0]} | {total[1]} | {total[2]} | {total[3]} |")
    return "\n".join(lines) + "\n"
