"""A grouped validation's result (``evaluate_grouped`` in ``grouped`` builds it) and its model-card text.

``GroupedReport.markdown()`` is the card's headline section: the pooled out-of-fold figures with their
intervals, how each threshold was fixed, what the intervals resampled, and one row per source, with the
small numbers stated rather than hidden. ``to_dict()`` / ``to_json()`` carry the same for ``metrics.json``
(nan as null).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tools.modelkit.grouped_stats import Interval


@dataclass(frozen=True)
class SourceRow:
    source: str
    clips: int
    positives: int
    negatives: int
    auc: float | None  # None: the source holds one class only
    sensitivity: float | None  # at the thresholds of the folds its clips were tested in
    specificity: float | None
    thresholds: tuple[float, ...]


@dataclass(frozen=True)
class FoldRow:
    name: str
    threshold: float
    train_scored: int
    test_clips: int
    auc: float | None


@dataclass(frozen=True)
class GroupedReport:
    scheme: str
    held_out: str
    rule: str
    threshold_from: str
    clips: int
    positives: int
    negatives: int
    auc: float
    auc_ci: Interval
    sensitivity: float
    sensitivity_ci: Interval
    specificity: float
    specificity_ci: Interval
    folds: tuple[FoldRow, ...]
    sources: tuple[SourceRow, ...]
    skipped: tuple[str, ...] = field(default=())  # folds with no labelled test clip: not scored
    resamples: int = 2000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def markdown(self) -> str:
        return report_markdown(self)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    return v


def _f(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def _count(rate: float, n: int) -> str:
    return f"{_f(rate)} ({round(rate * n)}/{n})" if n and not math.isnan(rate) else "n/a"


def report_markdown(r: GroupedReport) -> str:
    unit = r.auc_ci.unit
    single = [f for f in r.folds if f.auc is None]
    lines = [
        f"Validation: **{r.scheme}**, {len(r.folds)} scored folds; no {r.held_out} is in both a fold's "
        f"training and its test clips. {r.clips} clips ({r.positives} with the finding, {r.negatives} "
        f"without) from {len(r.sources)} sources.",
        "",
        "| measure (clip level, out-of-fold) | value | 95% interval |",
        "| --- | --- | --- |",
        f"| AUC | {_f(r.auc)} | {r.auc_ci.text()} |",
        f"| sensitivity | {_count(r.sensitivity, r.positives)} | {r.sensitivity_ci.text()} |",
        f"| specificity | {_count(r.specificity, r.negatives)} | {r.specificity_ci.text()} |",
        "",
        f"Thresholds: rule `{r.rule}`, fixed in each fold from {r.threshold_from} of that fold's training "
        "clips only, before its test clips were scored, then applied to them unchanged.",
        f"Intervals: percentile bootstrap, {r.resamples} resamples (seed {r.seed}) of whole **{unit}s**"
        + (
            f": {len(r.sources)} sources are too few to resample, so clips are resampled; these intervals "
            "ignore the spread between sources and are narrower than a new site would see."
            if unit == "clip"
            else "."
        ),
    ]
    if single:
        lines.append(
            f"{len(single)} of {len(r.folds)} test folds hold one class only, so the AUC is that of the "
            "pooled out-of-fold scores (each clip scored by the model that did not see its fold), not a "
            "mean of per-fold AUCs."
        )
    if r.skipped:
        lines.append(f"Not scored (no labelled test clip): {', '.join(r.skipped)}.")
    if r.positives < 30 or r.negatives < 30:
        lines.append(
            f"Small numbers: {r.positives} positive and {r.negatives} negative clips; read the intervals, "
            "not the point figures."
        )
    lines += [
        "",
        "| source | clips | with | without | AUC | sensitivity | specificity | threshold |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | --- |",
    ]
    for s in r.sources:
        a = _f(s.auc) if s.auc is not None else "n/a (one class)"
        th = ", ".join(_f(t, 3) for t in s.thresholds)
        lines.append(
            f"| {s.source} | {s.clips} | {s.positives} | {s.negatives} | {a} | {_f(s.sensitivity)} | "
            f"{_f(s.specificity)} | {th} |"
        )
    return "\n".join(lines) + "\n"
