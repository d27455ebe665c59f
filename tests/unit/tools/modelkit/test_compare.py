"""tools.modelkit.compare: finding matching, latency figures and the tolerance verdict."""

from __future__ import annotations

from typing import Any

import pytest

from edge.results import Box, Finding
from tools.modelkit.compare import format_summary, iou, latency_summary, match_findings, tolerance_failures


def f(label: str, x0: float, y0: float, x1: float, y1: float) -> Finding:
    return Finding(label=label, confidence=0.9, box=Box(x0, y0, x1, y1))


def test_iou_of_boxes() -> None:
    assert iou(f("a", 0, 0, 10, 10), f("a", 0, 0, 10, 10)) == 1.0
    assert iou(f("a", 0, 0, 10, 10), f("a", 5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(f("a", 0, 0, 10, 10), f("a", 20, 20, 30, 30)) == 0.0


def test_match_needs_same_label_and_enough_overlap() -> None:
    a = [f("a", 0, 0, 10, 10), f("b", 50, 50, 60, 60)]
    assert match_findings(a, [f("a", 1, 1, 11, 11), f("b", 50, 50, 60, 60)]) == (2, 0, 0)
    assert match_findings(a, [f("b", 0, 0, 10, 10)]) == (0, 2, 1)  # right place, wrong label
    assert match_findings(a, [f("a", 6, 0, 16, 10)]) == (0, 2, 1)  # IoU 0.25 < 0.5
    assert match_findings([], []) == (0, 0, 0)


def test_match_is_one_to_one_best_overlap_first() -> None:
    a = [f("a", 0, 0, 10, 10), f("a", 2, 0, 12, 10)]
    b = [f("a", 2, 0, 12, 10)]
    assert match_findings(a, b) == (1, 1, 0)  # the exact twin takes it; the other stays unmatched


def test_latency_summary() -> None:
    s = latency_summary([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median"] == 3.0 and s["mean"] == 22.0 and 4.0 < s["p99"] <= 100.0


def _report(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "frames": 10,
        "task": "classification",
        "baseline": {"name": "m", "precision": "fp32", "backend": "onnxruntime", "provider": "CPU",
                     "latency_ms": {"median": 2.0, "p99": 3.0, "mean": 2.1}},
        "candidate": {"name": "m", "precision": "int8", "backend": "tensorrt", "provider": "TRT",
                      "latency_ms": {"median": 1.0, "p99": 1.5, "mean": 1.1}},
        "speedup": 2.0,
        "outputs": {"logits": {"max_abs_diff": 0.2, "mean_abs_diff": 0.05}},
        "classification": {"top1_agreement": 0.9, "top1_disagreements": 1, "max_probability_diff": 0.3},
    }  # fmt: skip
    r.update(over)
    return r


def test_tolerance_failures_name_what_is_off() -> None:
    assert tolerance_failures(_report(), max_abs_diff=0.5, min_top1_agreement=0.9) == []
    fails = tolerance_failures(_report(), max_abs_diff=0.1, min_top1_agreement=0.95)
    assert fails[0] == "output logits: max abs diff 0.2 > 0.1"
    assert fails[1].startswith("top-1 agreement 0.9000 < 0.95 (1 of 10 frames differ)")
    det = {"match_iou": 0.5, "baseline_findings": 4, "candidate_findings": 3, "matched": 3,
           "unmatched_baseline": 1, "unmatched_candidate": 0}  # fmt: skip
    r = _report(detection=det)
    del r["classification"]
    assert tolerance_failures(r, max_unmatched=1) == []
    assert "1 baseline and 0 candidate findings unmatched" in tolerance_failures(r)[0]


def test_summary_mentions_both_sides_and_speedup() -> None:
    text = format_summary(_report())
    assert "baseline  m fp32 on onnxruntime/CPU: median 2.000 ms" in text
    assert "speedup (baseline median / candidate median): 2.0" in text
    assert "top-1 agreement 0.9000 (1 frames differ)" in text
