"""Patient folds never split a patient; bootstrap intervals resample patients."""

from __future__ import annotations

import numpy as np
import pytest

from tools.modelkit.patients import patient_bootstrap, patient_folds


def test_folds_keep_each_patient_whole_and_stratify() -> None:
    patients = [f"p{i // 3}" for i in range(60)]  # 20 patients, 3 films each
    labels = [int(i // 3 < 6) for i in range(60)]  # 6 positive patients
    folds = patient_folds(patients, 3, seed=1, labels=labels)
    for p in set(patients):
        assert len({int(folds[i]) for i, q in enumerate(patients) if q == p}) == 1
    for f in range(3):
        assert {labels[i] for i in np.flatnonzero(folds == f)} == {0, 1}, "both labels in every fold"


def test_too_many_folds_are_refused() -> None:
    with pytest.raises(ValueError, match="3 patients"):
        patient_folds(["a", "b", "c"], 4)


def test_bootstrap_interval_brackets_the_mean_and_counts_patients() -> None:
    values = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    patients = ["a", "a", "b", "b", "c", "c"]
    it = patient_bootstrap(patients, lambda idx: float(values[idx].mean()), n=500)
    assert it.low <= values.mean() <= it.high and it.groups == 3 and it.unit == "patient"
