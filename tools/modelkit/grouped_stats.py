"""The figures grouped validation quotes: clip-level AUC, sensitivity and specificity, a threshold fixed
from training scores, bootstrap 95% intervals that resample groups, and per-group rates.

    auc(labels, scores) -> float                      Mann-Whitney, ties count one half; nan with one class
    sensitivity(labels, scores, threshold) -> float   share of positives with score >= threshold
    specificity(labels, scores, threshold) -> float   share of negatives with score < threshold
    fix_threshold(labels, scores, rule="youden") -> float
        rule: "youden" | "sensitivity>=0.9" | "specificity>=0.8" (any x in [0, 1]) | "fixed:1.0" (declared
        before any data were seen; the scores are not used)
    bootstrap_ci(labels, scores, groups, statistic, n=2000, seed=0, min_groups=10) -> Interval
    wilson(hits, n) -> (low, high)
    rate_by_group(groups, hits, clusters=None, n=2000, seed=0) -> list[RateRow]

Labels are 0/1 (1 = the finding is present); a clip is called positive when its score >= the threshold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Statistic = Callable[[np.ndarray, np.ndarray], float]


def _arrays(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, ...]:
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D and of one length, got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got {sorted(set(y.tolist()))}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y, s


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied scores sharing the mean of their ranks."""
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks start..end-1 (0-based) -> mean of 1-based ranks
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """P(score of a positive > score of a negative) + half P(tie); nan when a class is missing."""
    y, s = _arrays(labels, scores)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    u = _average_ranks(s)[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def sensitivity(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, threshold: float
) -> float:
    y, s = _arrays(labels, scores)
    pos = s[y == 1]
    return float((pos >= threshold).mean()) if len(pos) else math.nan


def specificity(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, threshold: float
) -> float:
    y, s = _arrays(labels, scores)
    neg = s[y == 0]
    return float((neg < threshold).mean()) if len(neg) else math.nan


_RULE = re.compile(r"^(sensitivity|specificity)\s*>=\s*(0(?:\.\d+)?|1(?:\.0*)?)$")


def fix_threshold(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, rule: str = "youden"
) -> float:
    """The threshold ``rule`` picks on these (training) scores.

    Candidates are the midpoints between neighbouring distinct scores, so a threshold keeps a margin to
    both sides, plus the lowest score (call everything) and just above the highest (call nothing).
    ``youden`` maximises sensitivity + specificity - 1, ties going to the lower (more sensitive)
    threshold; ``sensitivity>=x`` is the highest threshold keeping sensitivity >= x (best specificity),
    ``specificity>=x`` the lowest keeping specificity >= x (best sensitivity); ``fixed:x`` is x.
    """
    y, s = _arrays(labels, scores)
    if rule.startswith("fixed:"):
        try:
            return float(rule.removeprefix("fixed:"))
        except ValueError:
            raise ValueError(f"threshold rule {rule!r}: 'fixed:' takes a number") from None
    m = _RULE.match(rule.strip())
    if rule.strip() != "youden" and not m:
        raise ValueError(
            f"threshold rule {rule!r}: expected 'youden', 'sensitivity>=x', 'specificity>=x' or 'fixed:x'"
        )
    needs = {"youden": (0, 1), "sensitivity": (1,), "specificity": (0,)}[m.group(1) if m else "youden"]
    for cls in needs:
        if not (y == cls).any():
            name = "positive" if cls else "negative"
            raise ValueError(f"threshold rule {rule!r} needs a {name} training score; there is none")
    u = np.unique(s)
    cands = np.r_[u[0], (u[:-1] + u[1:]) / 2.0, np.nextafter(u[-1], math.inf)]
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    # share of positives at or above each candidate, of negatives below it (sorted: O(n log n))
    sens = (len(pos) - np.searchsorted(pos, cands, "left")) / max(len(pos), 1)
    spec = np.searchsorted(neg, cands, "left") / max(len(neg), 1)
    if m is None:
        return float(cands[int(np.argmax(sens + spec))])  # argmax takes the first, the lowest threshold
    x = float(m.group(2))
    if m.group(1) == "sensitivity":
        return float(cands[np.flatnonzero(sens >= x - 1e-12)[-1]])  # cands[0] calls all: always qualifies
    return float(cands[np.flatnonzero(spec >= x - 1e-12)[0]])  # the last candidate calls none


@dataclass(frozen=True)
class Interval:
    """A 95% percentile bootstrap interval and what it resampled."""

    low: float
    high: float
    unit: str  # "source" (whole groups resampled) or "clip" (too few groups: clips resampled)
    groups: int  # distinct groups (unit "source") or items (unit "clip") resampled
    valid: int  # resamples where the statistic was defined (both classes drawn, ...)

    def text(self, digits: int = 2) -> str:
        if math.isnan(self.low):
            return "n/a"
        return f"{self.low:.{digits}f}-{self.high:.{digits}f}"


def bootstrap_ci(
    labels: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    groups: Sequence[str] | None,
    statistic: Statistic,
    n: int = 2000,
    seed: int = 0,
    min_groups: int = 10,
) -> Interval:
    """95% percentile interval of ``statistic(labels, scores)``, resampling whole groups with replacement.

    With fewer than ``min_groups`` distinct groups (or ``groups`` None) the clips are resampled instead,
    and ``Interval.unit`` says so: such an interval ignores the spread between sources and is too narrow
    for a new source. Resamples where the statistic is nan (one class drawn) are dropped and counted.
    """
    y, s = _arrays(labels, scores)
    g = np.asarray(groups if groups is not None else np.arange(len(y)).astype(str))
    if len(g) != len(y):
        raise ValueError(f"groups has {len(g)} entries for {len(y)} labels")
    names, idx = np.unique(g, return_inverse=True)
    unit = "source" if groups is not None and len(names) >= min_groups else "clip"
    members = [np.flatnonzero(idx == i) for i in range(len(names))] if unit == "source" else None
    count = len(names) if unit == "source" else len(y)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        draw = rng.integers(0, count, count)
        take = np.concatenate([members[i] for i in draw]) if members is not None else draw
        v = statistic(y[take], s[take])
        if not math.isnan(v):
            values.append(v)
    if not values:
        return Interval(math.nan, math.nan, unit, count, 0)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return Interval(float(lo), float(hi), unit, count, len(values))


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion hits/n."""
    if n <= 0:
        return math.nan, math.nan
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class RateRow:
    group: str
    n: int  # frames
    hits: int  # frames called X
    rate: float
    low: float
    high: float
    method: str  # "wilson" (frames taken as independent) or "clip bootstrap" (clips resampled)


def rate_by_group(
    groups: Sequence[str],
    hits: Sequence[bool] | np.ndarray,
    clusters: Sequence[str] | None = None,
    n: int = 2000,
    seed: int = 0,
) -> list[RateRow]:
    """Share of frames called X per group (source), with a 95% interval, plus an ``all`` row.

    Frames of one clip are alike, so with ``clusters`` (each frame's clip) the interval resamples clips
    within the group; without, it is Wilson's, which takes the frames as independent and is too narrow.
    """
    g = np.asarray(groups)
    h = np.asarray(hits, dtype=bool)
    if len(g) != len(h) or (clusters is not None and len(clusters) != len(h)):
        raise ValueError("groups, hits and clusters must have one entry per frame")
    c = np.asarray(clusters) if clusters is not None else None
    rows = []
    for name in [*sorted(set(g.tolist())), "all"]:
        sel = np.ones(len(g), bool) if name == "all" else g == name
        k, m = int(h[sel].sum()), int(sel.sum())
        if c is None:
            lo, hi = wilson(k, m)
        else:
            # a clip's frames are resampled as one block: the rate is the resampled frames' mean
            ci = bootstrap_ci(np.zeros(m, int), h[sel].astype(float), c[sel].tolist(), _mean, n, seed, 1)
            lo, hi = ci.low, ci.high
        rows.append(RateRow(name, m, k, k / m, lo, hi, "wilson" if c is None else "clip bootstrap"))
    return rows


def _mean(_labels: np.ndarray, values: np.ndarray) -> float:
    return float(values.mean())
