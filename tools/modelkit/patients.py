"""Patient-level validation for models trained on single images (a chest film per row, several per
patient): folds that never split a patient, and 95% bootstrap intervals that resample patients.

    patient_folds(patients, k, seed=0, labels=None) -> np.ndarray   fold index (0..k-1) per item
    patient_bootstrap(patients, statistic, n=2000, seed=0) -> Interval
        ``statistic(indices) -> float`` is computed on the items of a resample of whole patients
        (drawn with replacement, so a patient drawn twice counts twice); nan resamples are dropped.

``grouped`` does the same for ``ClipRecord``s of ultrasound clips; these work on any arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from tools.modelkit.grouped_stats import Interval


def patient_folds(
    patients: Sequence[str], k: int, seed: int = 0, labels: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """Fold index per item; all of a patient's items share a fold. With ``labels`` the patients are
    dealt to folds per label (a patient's label is its items' maximum), so every fold has both."""
    p = np.asarray(patients)
    names = np.unique(p)
    if k < 2 or k > len(names):
        raise ValueError(
            f"{k} folds need 2..{len(names)} patients per fold count; have {len(names)} patients"
        )
    rng = np.random.default_rng(seed)
    of_patient: dict[str, int] = {}
    if labels is None:
        strata = {0: list(names)}
    else:
        y = np.asarray(labels)
        strata = {}
        for name in names:
            strata.setdefault(int(y[p == name].max()), []).append(name)
    offset = 0
    for key in sorted(strata):
        group = np.array(sorted(strata[key]))
        rng.shuffle(group)
        for i, name in enumerate(group):
            of_patient[str(name)] = (i + offset) % k
        offset += len(group)  # the next stratum starts where this one stopped: folds stay even
    return np.array([of_patient[str(x)] for x in p], np.int64)


def patient_bootstrap(
    patients: Sequence[str], statistic: Callable[[np.ndarray], float], n: int = 2000, seed: int = 0
) -> Interval:
    """95% percentile interval of ``statistic`` over resamples of whole patients."""
    p = np.asarray(patients)
    names, idx = np.unique(p, return_inverse=True)
    members = [np.flatnonzero(idx == i) for i in range(len(names))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        take = np.concatenate([members[i] for i in rng.integers(0, len(names), len(names))])
        v = statistic(take)
        if not math.isnan(v):
            values.append(v)
    if not values:
        return Interval(math.nan, math.nan, "patient", len(names), 0)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return Interval(float(lo), float(hi), "patient", len(names), len(values))
