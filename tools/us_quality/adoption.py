"""Whether a recipe change replaces the published recipe: the rule, as code, applied to two
leave-one-source-out runs (``grouped_cv``) of the same folds.

The rule was set before the first trial it judged ran and has not moved since: at the runtime's
fault floor, INT8 CPU form, a candidate is adopted only if
- the mean of the sources' untouched ``diagnostic`` shares does not fall;
- the worst source's share rises;
- no fault's pooled recall falls by more than ``MAX_RECALL_FALL``;
- the INT8 publish gate holds (``grouped_report.int8_gap`` within ``GATE``).
Every trial, adopted or not, is quoted in the card with this verdict and its reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tools.us_quality import FAULT_MIN_CONFIDENCE, LABELS
from tools.us_quality import grouped_report as G

FORM = "int8_cpu"
MAX_RECALL_FALL = 0.02
GATE = 0.01


@dataclass
class Verdict:
    adopted: bool
    failed: list[str] = field(default_factory=list)  # the rule's points that did not hold, in words

    def __str__(self) -> str:
        return "adopted" if self.adopted else "not adopted: " + "; ".join(self.failed)


def _untouched_points(cand: dict, base: dict) -> list[str]:
    cu, bu = G.pooled_untouched(cand, FORM), G.pooled_untouched(base, FORM)
    failed = []
    if cu["mean_of_sources"] < bu["mean_of_sources"]:
        failed.append(f"mean of sources {bu['mean_of_sources']:.3f} -> {cu['mean_of_sources']:.3f}")
    if cu["worst"] <= bu["worst"]:
        failed.append(f"worst source {bu['worst']:.3f} -> {cu['worst']:.3f} ({cu['worst_source']})")
    return failed


def judge_untouched(candidate: dict, baseline: dict, floor: float = FAULT_MIN_CONFIDENCE) -> Verdict:
    """The rule's first two points only (untouched frames): for a baseline whose rendered faults
    were drawn otherwise (another label definition), where recalls are not comparable."""
    failed = _untouched_points(G.at_threshold(candidate, floor), G.at_threshold(baseline, floor))
    return Verdict(not failed, failed)


def judge(candidate: dict, baseline: dict, floor: float = FAULT_MIN_CONFIDENCE) -> Verdict:
    """The rule (module doc) on two raw runs with per-frame probabilities, both read at ``floor``."""
    cand, base = G.at_threshold(candidate, floor), G.at_threshold(baseline, floor)
    failed = _untouched_points(cand, base)
    for lab in LABELS[1:]:
        before, after = G.recall(base, FORM, lab)["recall"], G.recall(cand, FORM, lab)["recall"]
        if before - after > MAX_RECALL_FALL + 1e-9:
            failed.append(f"{lab} recall {before:.3f} -> {after:.3f}")
    gap = max(G.int8_gap(cand).values())
    if gap > GATE + 1e-9:
        failed.append(f"INT8 {gap * 100:.1f} points under FP32")
    return Verdict(not failed, failed)
