"""The steps, each reading what the earlier ones left in the work folder.

work/dataset.npz, dataset.json    step dataset
work/fp32.pt, fp32.onnx           step train (the unpruned model)
work/pruned.pt, pruned.onnx       step prune (+ prune.json: FLOPs and parameters before and after)
work/int8.onnx, int8-cpu.onnx     step quantize (the pruned model in INT8 Q/DQ: portable and CPU forms;
                                  int8.json says how)
work/metrics.json                 step evaluate (all variants, phantom test set)
work/loso.json, loso.md           step loso (the headline: leave-one-source-out on real clips, a model
                                  per fold through train, prune and quantize)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tools.lung_detector.recipe import Recipe

Log = Any


def _dataset(work: Path) -> Any:
    from tools.lung_detector.dataset import load

    return load(work / "dataset.npz")


def dataset(r: Recipe, work: Path, log: Log, cache: Path | None = None) -> None:
    from tools.lung_detector.dataset import build
    from tools.modelkit.pocus import DEFAULT_CACHE

    build(r, work, cache or DEFAULT_CACHE, log)


def train(r: Recipe, work: Path, log: Log) -> None:
    from tools.lung_detector.train import train as run

    run(r, _dataset(work), work, log)


def prune(r: Recipe, work: Path, log: Log) -> None:
    import torch

    from tools.lung_detector.model import Detector
    from tools.lung_detector.prune import prune_to, widths
    from tools.lung_detector.train import export_onnx, fit
    from tools.modelkit.training import set_determinism

    set_determinism(r.seed, r.train.threads)
    model = Detector(len(r.labels))
    model.load_state_dict(torch.load(work / "fp32.pt"))
    report = prune_to(model, r.input_size, r.prune.flops_reduction, log)
    history = fit(
        model, _dataset(work), r, r.prune.finetune_steps, r.prune.lr, r.seed + 1, log, tag="finetune"
    )
    torch.save({"widths": widths(model), "state": model.state_dict()}, work / "pruned.pt")
    diff = export_onnx(model, work / "pruned.onnx", r.input_size)
    report |= {
        "finetune_steps": r.prune.finetune_steps,
        "finetune_lr": r.prune.lr,
        "finetune_history": history,
        "export_max_abs_diff": diff,
    }
    (work / "prune.json").write_text(json.dumps(report, indent=2) + "\n")
    log(
        f"pruned: {report['flops_removed']:.1%} of FLOPs and "
        f"{report['params_removed']:.1%} of parameters removed"
    )


def loso(r: Recipe, work: Path, log: Log) -> None:
    from tools.lung_detector.loso import run

    run(r, work, log, variants=tuple(VARIANTS))


def _val_map(r: Recipe, work: Path) -> Any:
    from tools.lung_detector.evaluate import OnnxDetector, detection_metrics

    val = _dataset(work).phantom["val"]

    def score(path: Path) -> float:
        m = detection_metrics(OnnxDetector(path, len(r.labels)), val, r.labels, r.evaluate.min_confidence)
        return float(m["map50"])

    return score


def quantize(r: Recipe, work: Path, log: Log) -> None:
    from tools.lung_detector.quantize import quantize as run

    run(
        work / "pruned.onnx",
        work,
        _dataset(work),
        r.quantize.calib_frames,
        r.seed,
        r.quantize.max_drop,
        _val_map(r, work),
        log,
    )


VARIANTS = {"fp32": "fp32.onnx", "pruned": "pruned.onnx", "int8": "int8.onnx", "int8_cpu": "int8-cpu.onnx"}


def evaluate(r: Recipe, work: Path, log: Log) -> dict[str, Any]:
    from tools.lung_detector.evaluate import (
        OnnxDetector,
        count_metrics,
        count_threshold,
        detection_metrics,
        latency,
    )

    ds = _dataset(work)
    b_line = r.labels.index("b_line")
    th = r.evaluate.min_confidence
    out: dict[str, Any] = {"variants": {}}
    review = r.evaluate.review_below
    if review == "auto":
        int8s = [OnnxDetector(work / VARIANTS[k], len(r.labels)) for k in ("int8", "int8_cpu")]
        out["count_threshold"] = count_threshold(int8s, ds.phantom["val"], b_line, th)
        review = out["count_threshold"]["cut"]
        log(f"count threshold (review_below) chosen on the phantom val set: {review}")
    out["review_below"] = float(review)
    for name, file in VARIANTS.items():
        model = OnnxDetector(work / file, len(r.labels))
        det = detection_metrics(model, ds.phantom["test"], r.labels, th)
        counts = count_metrics(model, ds.phantom["test"], b_line, out["review_below"])
        out["variants"][name] = {"phantom_test": det, "b_line_count": counts}
        log(f"{name}: phantom test mAP50 {det['map50']:.4f}; count exact {counts['exact']:.3f}")
    sample = ds.phantom["test"].images[0]
    out["latency"] = latency(
        {k: work / f for k, f in VARIANTS.items()}, sample, r.evaluate.latency_runs, len(r.labels)
    )
    lat = out["latency"]
    med = {k: lat[k]["median_ms"] for k in VARIANTS}
    # What the runtime runs on this CPU is the CPU form; the portable form is TensorRT's.
    out["speedup"] = {
        "int8_cpu_vs_fp32": med["fp32"] / med["int8_cpu"],
        "int8_cpu_vs_pruned": med["pruned"] / med["int8_cpu"],
        "int8_vs_pruned": med["pruned"] / med["int8"],
        "pruned_vs_fp32": med["fp32"] / med["pruned"],
    }
    v = out["variants"]
    m = {k: v[k]["phantom_test"]["map50"] for k in VARIANTS}
    out["drops"] = {
        "pruned_vs_fp32": m["fp32"] - m["pruned"],
        "int8_vs_pruned": m["pruned"] - m["int8"],
        "int8_cpu_vs_pruned": m["pruned"] - m["int8_cpu"],
        "int8_vs_fp32": m["fp32"] - m["int8"],
        "int8_cpu_vs_fp32": m["fp32"] - m["int8_cpu"],
    }
    log(
        "latency median ms: "
        + ", ".join(f"{k} {lat[k]['median_ms']:.2f}" for k in VARIANTS)
        + "; speed-ups: "
        + ", ".join(f"{k} {x:.2f}x" for k, x in out["speedup"].items())
    )
    log("mAP50 drops: " + ", ".join(f"{k} {d * 100:+.2f} pt" for k, d in out["drops"].items()))
    (work / "metrics.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def publish(
    r: Recipe, work: Path, out: Path, log: Log, tiny: bool = False, wall_s: float | None = None
) -> bool:
    from tools.lung_detector.publish import publish as run
    from tools.modelkit.publish_gate import GateRefused

    try:
        run(r, work, out, tiny=tiny, wall_s=wall_s, log=log)
    except GateRefused as exc:
        log(f"NOT PUBLISHED: {exc}")
        return False
    return True
