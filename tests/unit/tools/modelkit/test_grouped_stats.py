"""tools.modelkit.grouped_stats: AUC with ties, the threshold rules, group bootstrap intervals, rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tools.modelkit.grouped_stats import (
    auc,
    bootstrap_ci,
    fix_threshold,
    rate_by_group,
    sensitivity,
    specificity,
    wilson,
)


def pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def test_auc_hand_cases() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert auc([0, 1], [0.0, 1.0]) == 1.0 and auc([0, 1], [1.0, 0.0]) == 0.0
    assert auc([0, 0, 1, 1], [3, 3, 3, 3]) == 0.5  # all tied: half a win each
    assert auc([1, 1, 0, 0], [2, 3, 1, 2]) == 0.875  # 2 vs 2 is a tie: 3.5 of 4 pairs
    assert math.isnan(auc([1, 1], [0.2, 0.3])) and math.isnan(auc([0], [0.2]))


def test_auc_matches_counting_pairs_with_many_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        s = rng.integers(0, 5, 40).astype(float)  # five values: ties everywhere
        if 0 < y.sum() < len(y):
            assert auc(y, s) == pytest.approx(pairwise_auc(y, s), abs=1e-12)


def test_auc_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="one length"):
        auc([0, 1], [0.5])
    with pytest.raises(ValueError, match="0 or 1"):
        auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        auc([0, 1], [0.1, math.nan])


def test_sensitivity_and_specificity_call_positive_at_or_above_the_threshold() -> None:
    y, s = [1, 1, 1, 0, 0], [0.9, 0.5, 0.2, 0.5, 0.1]
    assert sensitivity(y, s, 0.5) == pytest.approx(2 / 3) and specificity(y, s, 0.5) == 0.5
    assert math.isnan(sensitivity([0, 0], [0.1, 0.2], 0.5))


def test_youden_on_separated_scores_sits_midway_between_the_classes() -> None:
    assert fix_threshold([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.9]) == pytest.approx(0.5)


def test_youden_with_overlap_and_ties_goes_to_the_more_sensitive_threshold() -> None:
    # cut at 0.35 (sens 1, spec 2/3) and at 0.65 (sens 2/3, spec 1) tie on Youden's J: the lower wins
    assert fix_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.6, 0.5, 0.7, 0.8]) == pytest.approx(0.35)


def test_youden_reaches_the_best_j_of_any_cut() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        y = np.r_[0, 1, rng.integers(0, 2, 30)]
        s = rng.integers(0, 8, len(y)) + y * rng.random(len(y)) * 3
        best = max(sensitivity(y, s, c) + specificity(y, s, c) for c in np.r_[s, s.max() + 1])
        t = fix_threshold(y, s)
        assert sensitivity(y, s, t) + specificity(y, s, t) == pytest.approx(best)


def test_sensitivity_and_specificity_rules() -> None:
    y, s = [0, 0, 0, 1, 1, 1], [0.1, 0.4, 0.6, 0.3, 0.7, 0.8]
    t = fix_threshold(y, s, "sensitivity>=1")
    assert t == pytest.approx(0.2) and sensitivity(y, s, t) == 1.0  # highest cut keeping every positive
    t = fix_threshold(y, s, "specificity>=1.0")
    assert t == pytest.approx(0.65) and specificity(y, s, t) == 1.0  # lowest cut losing no negative
    t = fix_threshold(y, s, "sensitivity >= 0.6")
    assert t == pytest.approx(0.65) and sensitivity(y, s, t) == pytest.approx(2 / 3)
    assert fix_threshold([1, 1], [0.3, 0.5], "sensitivity>=1") == 0.3  # no negative needed
    assert fix_threshold([0, 0], [0.3, 0.5], "specificity>=1") > 0.5  # calls nothing
    assert fix_threshold([0, 1], [0.3, 0.5], "fixed:1.0") == 1.0


def test_threshold_rules_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="expected 'youden'"):
        fix_threshold([0, 1], [0.1, 0.2], "f1")
    with pytest.raises(ValueError, match="needs a positive training score"):
        fix_threshold([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="needs a negative"):
        fix_threshold([1, 1], [0.1, 0.2], "specificity>=0.9")


def noisy_groups(n_groups: int, per_group: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Groups with a group-level offset (a scanner's brightness), half of each group positive."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.r_[np.zeros(per_group // 2), np.ones(per_group - per_group // 2)], n_groups).astype(int)
    offset = np.repeat(rng.normal(0, 0.8, n_groups), per_group)
    s = y * 1.0 + offset + rng.normal(0, 1.0, len(y))
    return y, s, [f"g{i}" for i in range(n_groups) for _ in range(per_group)]


def test_bootstrap_contains_the_estimate_and_narrows_with_more_groups() -> None:
    y, s, g = noisy_groups(12, 8, 0)
    few = bootstrap_ci(y, s, g, auc, n=500, seed=1)
    assert few.unit == "source" and few.groups == 12 and few.valid == 500
    assert few.low <= auc(y, s) <= few.high
    y2, s2, g2 = noisy_groups(120, 8, 0)
    many = bootstrap_ci(y2, s2, g2, auc, n=500, seed=1)
    assert many.low <= auc(y2, s2) <= many.high
    assert many.high - many.low < 0.6 * (few.high - few.low)


def test_bootstrap_is_deterministic_by_seed() -> None:
    y, s, g = noisy_groups(12, 6, 2)
    assert bootstrap_ci(y, s, g, auc, n=300, seed=5) == bootstrap_ci(y, s, g, auc, n=300, seed=5)
    assert bootstrap_ci(y, s, g, auc, n=300, seed=5) != bootstrap_ci(y, s, g, auc, n=300, seed=6)


def test_too_few_groups_resample_clips_and_say_so() -> None:
    y, s, g = noisy_groups(4, 10, 0)
    ci = bootstrap_ci(y, s, g, auc, n=300, min_groups=10)
    assert ci.unit == "clip" and ci.groups == 40
    assert bootstrap_ci(y, s, None, auc, n=300).unit == "clip"


def test_resamples_with_one_class_are_dropped_and_counted() -> None:
    # two groups, each one class: a resample drawing one group twice has no AUC
    ci = bootstrap_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], ["a", "a", "b", "b"], auc, n=400, min_groups=2)
    assert ci.unit == "source" and 100 < ci.valid < 300 and ci.low == ci.high == 1.0


def test_wilson_known_values() -> None:
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_rate_by_group_per_source_with_an_all_row() -> None:
    groups = ["a"] * 10 + ["b"] * 4
    hits = [True] * 9 + [False] + [False] * 4
    rows = {r.group: r for r in rate_by_group(groups, hits)}
    assert list(rows) == ["a", "b", "all"]
    assert rows["a"].rate == 0.9 and rows["a"].low < 0.9 < rows["a"].high and rows["a"].method == "wilson"
    assert (rows["b"].hits, rows["b"].n, rows["b"].low) == (0, 4, 0.0) and rows["all"].n == 14


def test_rate_by_group_resamples_clips_when_given() -> None:
    rng = np.random.default_rng(0)
    clips = [f"c{i}" for i in range(8) for _ in range(20)]
    hits = np.repeat(rng.random(8) < 0.7, 20)  # a clip's frames agree: 8 observations, not 160
    clip_rows = {r.group: r for r in rate_by_group(["a"] * 160, hits, clusters=clips, n=500)}
    frame_rows = {r.group: r for r in rate_by_group(["a"] * 160, hits)}
    c, f = clip_rows["a"], frame_rows["a"]
    assert c.method == "clip bootstrap" and c.low <= c.rate <= c.high
    assert c.high - c.low > f.high - f.low  # frames taken as independent understate the spread
