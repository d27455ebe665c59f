"""Scoring a detector file on films: per-class AP at IoU 0.5 (mAP50 the mean over the two fields)
and the IoU of each field's best box with the radiologist's, with bootstrap intervals over patients.

Boxes come from the ONNX file on the runtime's own inputs, through the runtime's decode and NMS
(``edge.inference.tasks.detection``), mapped back to film pixels by the Preprocessor's transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.inference.tasks.detection import decode_yolo, nms
from tools.cxr_lungs.data import LABELS, Films
from tools.cxr_lungs.view import normalize, to_input
from tools.modelkit.patients import patient_bootstrap
from tools.modelkit.sessions import cpu_session

KEEP = 5  # boxes per class and film kept for the precision-recall curve
MIN_SCORE = 0.01
IOU_NMS = 0.45


@dataclass
class Prediction:
    boxes: list[np.ndarray]  # per class [k, 4] xyxy in film pixels, best first
    scores: list[np.ndarray]  # per class [k]


def predict(path: Path, films: Films) -> list[Prediction]:
    sess = cpu_session(path)
    name = sess.get_inputs()[0].name
    out = []
    for gray in films.images:
        small, t = to_input(gray)
        raw = sess.run(None, {name: normalize(small)[None, None]})[0]
        boxes, scores, classes = decode_yolo(raw, len(LABELS), MIN_SCORE)
        per_b, per_s = [], []
        for c in range(len(LABELS)):
            m = classes == c
            b, s = boxes[m], scores[m]
            keep = nms(b, s, IOU_NMS)[:KEEP] if len(b) else np.zeros(0, np.int64)
            per_b.append(t.to_frame(b[keep]) if len(keep) else np.zeros((0, 4), np.float32))
            per_s.append(s[keep])
        out.append(Prediction(per_b, per_s))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [k, 4] with one box b [4]."""
    ix = (np.minimum(a[:, 2], b[2]) - np.maximum(a[:, 0], b[0])).clip(0)
    iy = (np.minimum(a[:, 3], b[3]) - np.maximum(a[:, 1], b[1])).clip(0)
    inter = ix * iy
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / np.maximum(union, 1e-9)


def average_precision(preds: Sequence[Prediction], truth: Sequence[np.ndarray], c: int) -> float:
    """AP at IoU 0.5 for class c (all-point interpolation); one true box per film."""
    items = []
    for i, p in enumerate(preds):
        for k, s in enumerate(p.scores[c]):
            items.append((float(s), i, k))
    items.sort(key=lambda x: -x[0])
    matched = set()
    tp = np.zeros(len(items))
    for j, (_, i, k) in enumerate(items):
        if i not in matched and iou(preds[i].boxes[c][k : k + 1], truth[i][c])[0] >= 0.5:
            matched.add(i)
            tp[j] = 1
    if not len(truth):
        return float("nan")
    recall = np.cumsum(tp) / len(truth)
    precision = np.cumsum(tp) / np.arange(1, len(items) + 1)
    r = np.r_[0.0, recall, 1.0]
    prec = np.r_[1.0, precision, 0.0]
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * prec[1:]))


def best_iou(preds: Sequence[Prediction], truth: Sequence[np.ndarray], c: int) -> np.ndarray:
    """Per film: IoU of the top-scoring class-c box with the true one (0 where none)."""
    return np.array(
        [float(iou(p.boxes[c][:1], t[c])[0]) if len(p.boxes[c]) else 0.0 for p, t in zip(preds, truth)]
    )


def summary(preds: Sequence[Prediction], films: Films, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """mAP50 and per-class AP50 and mean IoU, each with a 95% interval over patients."""
    truth = films.boxes

    def ci(stat: Any) -> dict[str, Any]:
        it = patient_bootstrap(films.patients, stat, n_boot, seed)
        return {"value": stat(np.arange(len(truth))), "low": it.low, "high": it.high}

    def sub(idx: np.ndarray) -> tuple[list[Prediction], list[np.ndarray]]:
        return [preds[i] for i in idx], [truth[i] for i in idx]

    ious = [best_iou(preds, truth, c) for c in range(len(LABELS))]
    out: dict[str, Any] = {
        "films": len(truth),
        "patients": len(set(films.patients)),
        "map50": ci(
            lambda idx: float(np.mean([average_precision(*sub(idx), c) for c in range(len(LABELS))]))
        ),
        "per_class": {},
    }
    for c, label in enumerate(LABELS):
        out["per_class"][label] = {
            "ap50": ci(lambda idx, c=c: average_precision(*sub(idx), c)),
            "mean_iou": ci(lambda idx, c=c: float(ious[c][idx].mean())),
            "found_at_0.25": float(np.mean([len(p.scores[c]) and p.scores[c][0] >= 0.25 for p in preds])),
        }
    return out
