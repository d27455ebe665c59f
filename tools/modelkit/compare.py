"""Run two loaded models on the same frames and say how far apart they are.

Used for FP32 vs INT8 after quantization (``tools.modelkit quantize``) and for ONNX Runtime vs
TensorRT on a device (``tools.modelkit.trt_check``). Both models go through the runtime's own path:
``LoadedModel.run_raw`` for the raw outputs (per-output max/mean absolute difference) and
``LoadedModel.infer`` for what the operator would see (top-1 label of a classifier, findings of a
detector after the runtime's decode and NMS, matched by label and IoU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.inference.model import LoadedModel
from edge.inference.preprocess import Preprocessor
from edge.results import Finding

MATCH_IOU = 0.5


def iou(a: Finding, b: Finding) -> float:
    """Overlap of two findings' boxes; 0 when either has no box."""
    if a.box is None or b.box is None:
        return 0.0
    ax0, ay0, ax1, ay1 = a.box.x0, a.box.y0, a.box.x1, a.box.y1
    bx0, by0, bx1, by1 = b.box.x0, b.box.y0, b.box.x1, b.box.y1
    w = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    h = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = w * h
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def match_findings(
    a: Sequence[Finding], b: Sequence[Finding], min_iou: float = MATCH_IOU
) -> tuple[int, int, int]:
    """(matched, unmatched in a, unmatched in b): greedy one-to-one pairs of the same label with
    IoU >= ``min_iou``, best overlap first."""
    pairs = sorted(
        ((iou(fa, fb), i, j) for i, fa in enumerate(a) for j, fb in enumerate(b) if fa.label == fb.label),
        reverse=True,
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < min_iou:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
    return len(used_a), len(a) - len(used_a), len(b) - len(used_b)


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    x = np.asarray(samples_ms, np.float64)
    if x.size == 0:
        return {"median": float("nan"), "p99": float("nan"), "mean": float("nan")}
    return {
        "median": round(float(np.median(x)), 4),
        "p99": round(float(np.percentile(x, 99)), 4),
        "mean": round(float(x.mean()), 4),
    }


def _describe(model: LoadedModel, latencies: Sequence[float]) -> dict[str, Any]:
    return {
        "name": model.name,
        "precision": model.precision,
        "file": model.path.name,
        "backend": model.info.backend,
        "provider": model.info.provider,
        "latency_ms": latency_summary(latencies),
    }


def compare_models(
    baseline: LoadedModel,
    candidate: LoadedModel,
    images: Sequence[np.ndarray],
    *,
    min_iou: float = MATCH_IOU,
) -> dict[str, Any]:
    """Report of ``candidate`` against ``baseline`` on ``images`` (JSON-ready)."""
    if baseline.manifest.input != candidate.manifest.input or baseline.task != candidate.task:
        raise ValueError("the two models must share task and input specification to be compared")
    if not images:
        raise ValueError("no frames to compare on")
    max_abs: dict[str, float] = {}
    sum_abs: dict[str, float] = {}
    count: dict[str, int] = {}
    lat_a: list[float] = []
    lat_b: list[float] = []
    agree = 0
    max_prob_diff = 0.0
    matched = unmatched_a = unmatched_b = found_a = found_b = 0
    names = [str(n) for n in baseline.session.output_names]
    pre = Preprocessor(baseline.manifest.input)  # the runtime's preprocessing, one tensor for both
    for image in images:
        tensor = pre(image)[0].copy()
        for name, ra, rb in zip(names, baseline.run_raw(tensor), candidate.run_raw(tensor)):
            ra32, rb32 = np.asarray(ra, np.float32), np.asarray(rb, np.float32)
            if ra32.shape != rb32.shape:
                raise ValueError(f"output {name!r}: shapes differ, {list(ra32.shape)} vs {list(rb32.shape)}")
            d = np.abs(ra32 - rb32)
            max_abs[name] = max(max_abs.get(name, 0.0), float(d.max(initial=0.0)))
            sum_abs[name] = sum_abs.get(name, 0.0) + float(d.sum())
            count[name] = count.get(name, 0) + d.size
        oa, ob = baseline.infer(image), candidate.infer(image)
        lat_a.append((oa.t_model_end_ns - oa.t_model_start_ns) / 1e6)
        lat_b.append((ob.t_model_end_ns - ob.t_model_start_ns) / 1e6)
        if oa.quality is not None and ob.quality is not None:
            agree += oa.quality.label == ob.quality.label
            diffs = [abs(p - ob.quality.probabilities[k]) for k, p in oa.quality.probabilities.items()]
            max_prob_diff = max(max_prob_diff, *diffs)
        else:
            m, ua, ub = match_findings(oa.findings, ob.findings, min_iou)
            matched, unmatched_a, unmatched_b = matched + m, unmatched_a + ua, unmatched_b + ub
            found_a, found_b = found_a + len(oa.findings), found_b + len(ob.findings)
    report: dict[str, Any] = {
        "frames": len(images),
        "task": baseline.task,
        "baseline": _describe(baseline, lat_a),
        "candidate": _describe(candidate, lat_b),
        "outputs": {
            n: {"max_abs_diff": max_abs[n], "mean_abs_diff": sum_abs[n] / max(count[n], 1)} for n in names
        },
    }
    med_a, med_b = report["baseline"]["latency_ms"]["median"], report["candidate"]["latency_ms"]["median"]
    report["speedup"] = round(med_a / med_b, 3) if med_b > 0 else None
    if baseline.task == "classification":
        report["classification"] = {
            "top1_agreement": agree / len(images),
            "top1_disagreements": len(images) - agree,
            "max_probability_diff": max_prob_diff,
        }
    else:
        report["detection"] = {
            "match_iou": min_iou,
            "baseline_findings": found_a,
            "candidate_findings": found_b,
            "matched": matched,
            "unmatched_baseline": unmatched_a,
            "unmatched_candidate": unmatched_b,
        }
    return report


def tolerance_failures(
    report: dict[str, Any],
    *,
    max_abs_diff: float | None = None,
    min_top1_agreement: float = 1.0,
    max_unmatched: int = 0,
) -> list[str]:
    """What in ``report`` is beyond the tolerances (empty: the candidate agrees)."""
    failures = []
    if max_abs_diff is not None:
        for name, o in report["outputs"].items():
            if o["max_abs_diff"] > max_abs_diff:
                failures.append(f"output {name}: max abs diff {o['max_abs_diff']:.6g} > {max_abs_diff:g}")
    cls = report.get("classification")
    if cls is not None and cls["top1_agreement"] < min_top1_agreement:
        failures.append(
            f"top-1 agreement {cls['top1_agreement']:.4f} < {min_top1_agreement:g} "
            f"({cls['top1_disagreements']} of {report['frames']} frames differ)"
        )
    det = report.get("detection")
    if det is not None:
        unmatched = det["unmatched_baseline"] + det["unmatched_candidate"]
        if unmatched > max_unmatched:
            failures.append(
                f"findings differ: {det['unmatched_baseline']} baseline and {det['unmatched_candidate']} "
                f"candidate findings unmatched (label + IoU >= {det['match_iou']}) > {max_unmatched} allowed"
            )
    return failures


def format_summary(report: dict[str, Any]) -> str:
    a, b = report["baseline"], report["candidate"]
    lines = [
        f"{report['frames']} frames, {report['task']}",
        f"baseline  {a['name']} {a['precision']} on {a['backend']}/{a['provider']}: "
        f"median {a['latency_ms']['median']:.3f} ms, p99 {a['latency_ms']['p99']:.3f} ms",
        f"candidate {b['name']} {b['precision']} on {b['backend']}/{b['provider']}: "
        f"median {b['latency_ms']['median']:.3f} ms, p99 {b['latency_ms']['p99']:.3f} ms",
        f"speedup (baseline median / candidate median): {report['speedup']}",
    ]
    for name, o in report["outputs"].items():
        lines.append(
            f"output {name}: max abs diff {o['max_abs_diff']:.6g}, mean abs diff {o['mean_abs_diff']:.6g}"
        )
    if "classification" in report:
        c = report["classification"]
        lines.append(
            f"top-1 agreement {c['top1_agreement']:.4f} ({c['top1_disagreements']} frames differ), "
            f"max probability diff {c['max_probability_diff']:.4g}"
        )
    if "detection" in report:
        d = report["detection"]
        lines.append(
            f"findings: {d['baseline_findings']} baseline, {d['candidate_findings']} candidate, "
            f"{d['matched']} matched, unmatched {d['unmatched_baseline']} / {d['unmatched_candidate']}"
        )
    return "\n".join(lines)
