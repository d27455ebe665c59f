"""Step 5, ``evaluate``: FP32 against pruned against INT8, as the runtime would run them.

- Phantom test set: mAP50 (all-point interpolated AP per class, averaged over the classes present)
  and per-class recall at the operating threshold.
- Phantom per-frame B-line count against the truth (what the overlay shows).
- Real clips are scored by the ``loso`` step (a model per left-out source), not here: the published
  model has seen every labelled clip.
- Latency: ONNX Runtime on this CPU, one intra-op thread (the runtime's default), the variants
  interleaved in one process so they share the machine's state; medians from the same run.
Decoding and NMS are the runtime's own (``edge.inference.tasks.detection``).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edge.inference.tasks.detection import batched_nms, decode_yolo
from tools.lung_detector.dataset import BoxSet
from tools.lung_detector.recipe import normalize
from tools.modelkit.sessions import cpu_session, interleaved_latency

NMS_IOU = 0.45
MAX_DETECTIONS = 100
MAP_FLOOR = 0.001  # candidates kept for the precision-recall curve


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # [K, 4] xyxy input pixels
    scores: np.ndarray
    classes: np.ndarray


class OnnxDetector:
    """An ONNX file run the way the runtime runs it: normalized input, decode, class-aware NMS."""

    def __init__(self, path: Path, num_classes: int, threads: int = 1) -> None:
        self.session = cpu_session(path, threads)
        self.input = self.session.get_inputs()[0].name
        self.num_classes = num_classes

    def raw(self, image: np.ndarray) -> np.ndarray:
        x = normalize(image[None])
        return np.asarray(self.session.run(None, {self.input: x})[0])

    def detect(self, image: np.ndarray, min_confidence: float) -> Detections:
        boxes, scores, ids = decode_yolo(self.raw(image), self.num_classes, min_confidence)
        keep = batched_nms(boxes, scores, ids, NMS_IOU)[:MAX_DETECTIONS]
        return Detections(boxes[keep], scores[keep], ids[keep])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (the PASCAL VOC 2010+ and COCO-style area under the PR curve)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    i = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[i + 1] - r[i]) * p[i + 1]))


def match(
    dets: list[Detections], truth: BoxSet, cls: int, iou: float = 0.5
) -> tuple[np.ndarray, np.ndarray, int]:
    """(scores, true-positive flags, number of ground-truth boxes) of class ``cls``; greedy by score."""
    scores, tps, n_gt = [], [], 0
    for i, d in enumerate(dets):
        gb, gc = truth.of(i)
        g = gb[gc == cls]
        n_gt += len(g)
        sel = d.classes == cls
        b, s = d.boxes[sel], d.scores[sel]
        order = np.argsort(-s, kind="stable")
        b, s = b[order], s[order]
        ious = iou_matrix(b, g)
        used = np.zeros(len(g), bool)
        for k in range(len(b)):
            hit = False
            if len(g):
                cand = np.where(used, -1.0, ious[k])
                j = int(cand.argmax())
                if cand[j] >= iou:
                    used[j] = hit = True
            scores.append(s[k])
            tps.append(hit)
    return np.asarray(scores, np.float32), np.asarray(tps, bool), n_gt


def detection_metrics(
    model: OnnxDetector, truth: BoxSet, labels: tuple[str, ...], min_confidence: float
) -> dict[str, Any]:
    dets = [model.detect(img, MAP_FLOOR) for img in truth.images]
    per_class: dict[str, Any] = {}
    aps = []
    for c, name in enumerate(labels):
        scores, tps, n_gt = match(dets, truth, c)
        if n_gt == 0:
            per_class[name] = {"gt": 0, "ap50": None, "recall": None, "precision": None}
            continue
        order = np.argsort(-scores, kind="stable")
        tp_cum = np.cumsum(tps[order])
        recall = tp_cum / n_gt
        precision = tp_cum / np.arange(1, len(order) + 1)
        ap = average_precision(recall, precision) if len(order) else 0.0
        aps.append(ap)
        at = scores[order] >= min_confidence
        n_at = int(at.sum())
        per_class[name] = {
            "gt": n_gt,
            "ap50": ap,
            "recall": float(tp_cum[n_at - 1] / n_gt) if n_at else 0.0,
            "precision": float(tp_cum[n_at - 1] / n_at) if n_at else None,
        }
    return {
        "map50": float(np.mean(aps)) if aps else 0.0,
        "per_class": per_class,
        "frames": len(truth),
        "operating_threshold": min_confidence,
    }


def true_counts(truth: BoxSet, cls: int) -> np.ndarray:
    """Ground-truth boxes of class ``cls`` per image."""
    return np.array([int(np.sum(truth.of(i)[1] == cls)) for i in range(len(truth))], np.int64)


COUNT_CUTS = tuple(round(0.25 + 0.05 * k, 2) for k in range(10))  # 0.25 .. 0.70


def count_threshold(models: list[OnnxDetector], truth: BoxSet, b_line: int, floor: float) -> dict[str, Any]:
    """The score cut whose per-frame B-line count is closest (mean absolute error, averaged over
    ``models``) to the truth of ``truth`` (the phantom validation set, never the test set)."""
    true = true_counts(truth, b_line)
    mae = np.zeros(len(COUNT_CUTS))
    for model in models:
        dets = [model.detect(img, floor) for img in truth.images]
        for k, cut in enumerate(COUNT_CUTS):
            pred = np.array([int(np.sum((d.classes == b_line) & (d.scores >= cut))) for d in dets])
            mae[k] += np.mean(np.abs(pred - true)) / len(models)
    best = int(np.argmin(mae))
    return {"cut": COUNT_CUTS[best], "val_mae_by_cut": dict(zip(map(str, COUNT_CUTS), mae.round(3).tolist()))}


def count_metrics(model: OnnxDetector, truth: BoxSet, b_line: int, min_confidence: float) -> dict[str, Any]:
    """How well the per-frame B-line count (what the overlay shows) matches the phantom's truth."""
    pred = b_line_counts(model, truth.images, b_line, min_confidence)
    true = true_counts(truth, b_line)
    err = pred - true
    by_true = {
        int(k): {"frames": int(np.sum(true == k)), "mean_predicted": float(pred[true == k].mean())}
        for k in np.unique(true)
    }
    return {
        "frames": len(truth),
        "exact": float(np.mean(err == 0)),
        "within_one": float(np.mean(np.abs(err) <= 1)),
        "mean_abs_error": float(np.mean(np.abs(err))),
        "mean_error": float(np.mean(err)),
        "by_true_count": by_true,
    }


def b_line_counts(model: OnnxDetector, images: np.ndarray, b_line: int, min_confidence: float) -> np.ndarray:
    return np.array(
        [int(np.sum(model.detect(img, min_confidence).classes == b_line)) for img in images], np.int64
    )


def latency(paths: dict[str, Path], image: np.ndarray, runs: int, num_classes: int) -> dict[str, Any]:
    """Per-variant single-frame session.run latency, interleaved round-robin, one thread each."""
    models = {k: OnnxDetector(p, num_classes, threads=1) for k, p in paths.items()}
    times = interleaved_latency({k: m.raw for k, m in models.items()}, [image], runs, warmup=10)
    out: dict[str, Any] = {
        k: {
            "median_ms": float(np.median(v)),
            "p99_ms": float(np.percentile(v, 99)),
            "runs": runs,
            "bytes": paths[k].stat().st_size,
        }
        for k, v in times.items()
    }
    out["environment"] = {
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "onnxruntime": ort.__version__,
        "intra_op_threads": 1,
    }
    return out
