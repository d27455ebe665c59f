"""Held-out evaluation of the exported ONNX files with ONNX Runtime (the runtime's backend).

The published model is trained on every real source, so its real-data figures come from the
leave-one-source-out run (``grouped_cv``), not from here. Here: a phantom test set (scenes with
seeds used by no other split, labelled from the phantom's truth) per class and per finding, the
virtual probe's lung tour (what ``edge run`` shows by default) per stop, other vendors' files
(label counts only: they are phantom and ocular images, no quality truth), and latency, measured for
all files in the same process, interleaved run by run, so all see the same load.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tools.modelkit.sessions import cpu_session, interleaved_latency
from tools.us_quality import FAULT_MIN_CONFIDENCE, LABELS
from tools.us_quality.data import clip_sector
from tools.us_quality.phantom import CASES, PhantomSet, findings_of, phantom_set, tour_set
from tools.us_quality.preprocess import normalize
from tools.us_quality.view import to_input


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(LABELS)) -> dict[str, object]:
    """Per-class precision / recall / F1, macro-F1, accuracy and the confusion matrix (rows: truth)."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class = {}
    f1s = []
    for k in range(n_classes):
        tp = cm[k, k]
        p = tp / cm[:, k].sum() if cm[:, k].sum() else 0.0
        r = tp / cm[k, :].sum() if cm[k, :].sum() else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        f1s.append(f1)
        per_class[LABELS[k]] = {
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f1), 4),
            "support": int(cm[k, :].sum()),
        }
    return {
        "per_class": per_class,
        "macro_f1": round(float(np.mean(f1s)), 4),
        "accuracy": round(float(np.trace(cm) / max(cm.sum(), 1)), 4),
        "confusion": cm.tolist(),
    }


def predict(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """Logits for uint8 samples (N, 128, 128), one frame per run as the runtime does (batch 1)."""
    out = np.zeros((len(x), len(LABELS)), np.float32)
    for i in range(len(x)):
        out[i] = sess.run(["logits"], {"input": normalize(x[i])[None, None]})[0][0]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, labels) logits."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def labels_of(logits: np.ndarray, fault_min: float = FAULT_MIN_CONFIDENCE) -> np.ndarray:
    """The runtime's verdict per row of logits: the arg-max, a fault under ``fault_min`` (softmax
    probability) called ``diagnostic`` (``edge.inference.tasks.classification``)."""
    probs = softmax(logits)
    top = probs.argmax(1)
    unsure = (top != 0) & (probs[np.arange(len(top)), top] < fault_min)
    return np.where(unsure, 0, top)


def latency(sessions: dict[str, ort.InferenceSession], x: np.ndarray, runs: int, warmup: int = 30) -> dict:
    """Median / p99 / mean of single-frame run time in ms per session, interleaved."""
    feeds = [normalize(x[i])[None, None] for i in range(min(runs, len(x)))]
    runners = {k: (lambda f, s=s: s.run(["logits"], {"input": f})) for k, s in sessions.items()}
    times = interleaved_latency(runners, feeds, runs, warmup)
    return {
        k: {
            "median_ms": round(float(np.median(v)), 4),
            "p99_ms": round(float(np.percentile(v, 99)), 4),
            "mean_ms": round(float(np.mean(v)), 4),
            "runs": runs,
        }
        for k, v in times.items()
    }


def evaluate(
    out_dir: Path,
    seed: int,
    latency_runs: int = 1000,
    workers: int = 2,
    phantom_scenes: int = 400,
    tour_fps: float = 2.0,
    vendors: Path | None = None,
) -> dict:
    p_test = phantom_set("test", phantom_scenes, seed, workers)
    x_tour, stops = tour_set(seed, tour_fps)
    files = {
        "fp32": out_dir / "us-quality-fp32.onnx",
        "int8": out_dir / "us-quality-int8.onnx",
        "int8_cpu": out_dir / "us-quality-int8-cpu.onnx",
    }
    sessions = {k: cpu_session(p) for k, p in files.items()}
    vendor_inputs = vendor_views(vendors) if vendors else {}
    result: dict[str, object] = {
        "labels": list(LABELS),
        "seed": seed,
        "phantom_test_frames": len(p_test),
        "phantom_test_scenes": phantom_scenes,
        "tour_frames": len(x_tour),
        "tour_fps": tour_fps,
        "vendor_files": sorted(vendor_inputs),
    }
    for k, s in sessions.items():
        sc: dict[str, object] = {"size_bytes": files[k].stat().st_size}
        sc["phantom"] = phantom_scores(s, p_test, x_tour, stops)
        sc["vendors"] = {
            name: np.bincount(labels_of(predict(s, x)), minlength=len(LABELS)).tolist()
            for name, x in vendor_inputs.items()
        }
        result[k] = sc
    lat = latency(sessions, p_test.images if len(p_test) else x_tour, latency_runs)
    for k in sessions:
        result[k]["latency"] = lat[k]  # type: ignore[index]
    result["environment"] = {
        "onnxruntime": ort.__version__,
        "provider": "CPUExecutionProvider",
        "intra_op_threads": 1,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def vendor_views(folder: Path, max_frames: int = 60) -> dict[str, np.ndarray]:
    """Other vendors' files (phantom and ocular images, not lung) as the model sees them: each file's
    sector found from its own frames, every frame through ``view.to_input``."""
    from tools.modelkit.frames import read_frames
    from tools.modelkit.pocus import to_gray

    out: dict[str, np.ndarray] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".mp4", ".png", ".jpg", ".jpeg", ".dcm"):
            continue
        gray = [to_gray(f) for f in read_frames(path, max_frames)]
        mask = clip_sector(np.stack(gray)) if len({g.shape for g in gray}) == 1 else None
        out[path.name] = np.stack(
            [to_input(g, mask if mask is not None else clip_sector(g[None])) for g in gray]
        )
    return out


def phantom_scores(sess: ort.InferenceSession, ps: PhantomSet, x_tour: np.ndarray, stops: list[str]) -> dict:
    """Per-class scores on the phantom test set, the share called diagnostic per finding of the
    diagnostic cases, the label counts per case, and the share of tour frames called diagnostic."""
    pred = labels_of(predict(sess, ps.images)) if len(ps) else np.zeros(0, int)
    out: dict[str, object] = scores(ps.labels, pred) if len(ps) else {}
    diag = ps.labels == 0
    finding = findings_of(ps)
    out["diagnostic_rate_by_finding"] = {
        f: round(float((pred[diag & (finding == f)] == 0).mean()), 4)
        for f in dict.fromkeys(c.finding for c in CASES if c.finding)
        if (diag & (finding == f)).any()
    }
    lung_findings = diag & np.isin(finding, ("b_lines", "consolidation", "effusion"))
    out["findings_diagnostic_rate"] = (
        round(float((pred[lung_findings] == 0).mean()), 4) if lung_findings.any() else None
    )
    out["findings_frames"] = int(lung_findings.sum())
    out["by_case"] = {
        c.name: np.bincount(pred[ps.case == ci], minlength=len(LABELS)).tolist()
        for ci, c in enumerate(CASES)
        if (ps.case == ci).any()
    }
    tp = labels_of(predict(sess, x_tour))
    arr = np.array(stops)
    out["tour"] = {
        "diagnostic_rate": round(float((tp == 0).mean()), 4),
        "by_stop": {
            st: np.bincount(tp[arr == st], minlength=len(LABELS)).tolist() for st in dict.fromkeys(stops)
        },
    }
    return out


def summary(metrics: dict) -> str:
    lines = []
    for k in ("fp32", "int8", "int8_cpu"):
        m = metrics[k]
        ph = m["phantom"]
        lines.append(
            f"{k}: size {m['size_bytes']} B  latency median {m['latency']['median_ms']:.3f} ms "
            f"p99 {m['latency']['p99_ms']:.3f} ms  phantom macro-F1 {ph.get('macro_f1', 0):.4f}  "
            f"findings -> diagnostic {ph['findings_diagnostic_rate']}  tour -> diagnostic "
            f"{ph['tour']['diagnostic_rate']}"
        )
        for name, counts in m["vendors"].items():
            lines.append(f"  {name}: " + ", ".join(f"{lab} {n}" for lab, n in zip(LABELS, counts) if n))
    return "\n".join(lines)
