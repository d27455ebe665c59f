"""Detection: YOLO-style output -> boxes, class-aware non-maximum suppression, Findings.

The layout is Ultralytics' export: ``[1, 4+C, N]`` with rows cx, cy, w, h then one score per
class (already sigmoid-ed, no separate objectness). ``[1, N, 4+C]`` is accepted too, told
apart by which axis has 4+C entries, so a user's exported detector works with a manifest alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.errors import ModelError
from edge.inference.blines import with_consensus
from edge.inference.manifest import Manifest
from edge.inference.preprocess import Transform
from edge.inference.shapes import Shape, fmt, static
from edge.inference.tasks.base import ImageTask, TaskOutput
from edge.results import Box, Finding


def decode_yolo(output: np.ndarray, num_classes: int, min_confidence: float) -> tuple[np.ndarray, ...]:
    """(boxes xyxy [K,4], scores [K], class ids [K]) of candidates above ``min_confidence``."""
    if output.ndim == 3 and output.shape[0] == 1:
        output = output[0]
    width = 4 + num_classes
    if output.ndim != 2 or width not in output.shape:
        raise ModelError(
            f"detection output of shape {list(output.shape)} is not YOLO layout [1, 4+C, N] "
            f"with C={num_classes}"
        )
    # When both axes are 4+C (N == 4+C) the documented Ultralytics layout wins.
    preds = output.T if output.shape[0] == width else output
    class_scores = preds[:, 4:width]
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(preds)), class_ids]
    # A NaN/inf row (a numerically broken model) is dropped here rather than drawn or reported.
    keep = (scores >= min_confidence) & np.isfinite(preds[:, :width]).all(axis=1)
    preds, scores, class_ids = preds[keep], scores[keep], class_ids[keep]
    cx, cy, w, h = preds[:, 0], preds[:, 1], preds[:, 2], preds[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return boxes, scores.astype(np.float32), class_ids.astype(np.int64)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first."""
    if len(boxes) == 0:
        return np.empty(0, np.int64)
    x0, y0, x1, y1 = boxes.T
    areas = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        h = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other."""
    if len(boxes) == 0:
        return np.empty(0, np.int64)
    # Shift each class into its own region of the plane, the usual trick, one NMS pass.
    offset = (float(boxes.max() - boxes.min()) + 1.0) * class_ids.astype(np.float32)
    return nms(boxes + offset[:, None], scores, iou_threshold)


class DetectionTask(ImageTask):
    """Findings from the first output: decoded, NMS-ed, capped at ``max_detections``, mapped back
    to frame pixels and clipped to the frame; below ``review_below`` a finding needs review. With
    the manifest's ``postprocess: ["consensus_b_lines"]``, the B-lines the consensus definition
    finds on the model's own scan-line input (``edge.inference.blines``) join the model's where
    their column holds none of the model's B-line boxes."""

    name = "detection"

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        self._labels = manifest.labels
        self._th = manifest.thresholds
        consensus = "consensus_b_lines" in manifest.postprocess
        self._b_line = manifest.labels.index("b_line") if consensus else None

    def decode(
        self, outputs: Sequence[np.ndarray], transform: Transform, frame_hw: tuple[int, int]
    ) -> TaskOutput:
        boxes, scores, ids = self.detect(outputs[0])
        if self._b_line is not None:
            boxes, scores, ids = with_consensus(boxes, scores, ids, self.preprocessor.fitted, self._b_line)
        if len(boxes):
            boxes = transform.to_frame(boxes)
            h, w = frame_hw
            # Strided views (x0, x1 and y0, y1), clipped in place; an index list would clip a copy.
            xs, ys = boxes[:, 0::2], boxes[:, 1::2]
            np.clip(xs, 0, w, out=xs)
            np.clip(ys, 0, h, out=ys)
        # Plain Python values first (one conversion per array, not per element): the same floats;
        # the review flag is compared by numpy, in the scores' float32, as before.
        needs = (scores < self._th.review_below).tolist()
        labels = self._labels
        findings = tuple(
            Finding(label=labels[c], confidence=sc, box=Box(*b), needs_review=r, class_id=c)
            for b, sc, c, r in zip(boxes.tolist(), scores.tolist(), ids.tolist(), needs)
        )
        return TaskOutput(findings=findings)

    def check_output(self, name: str, shape: Shape) -> str | None:
        """YOLO layout: [1, 4+C, N] or [1, N, 4+C] (or without the batch axis); symbolic sizes pass."""
        width = 4 + len(self._labels)
        rows = list(shape)
        batch_ok = len(rows) == 3 and static(rows[0]) in (None, 1)
        if batch_ok:
            rows = rows[1:]
        fixed = [static(d) for d in rows]
        if len(rows) != 2 or (len(shape) == 3 and not batch_ok) or (None not in fixed and width not in fixed):
            return (
                f"the model's output {name!r} has shape {fmt(shape)}, not the YOLO layout "
                f"[1, 4+C, N] with C = {len(self._labels)} labels (4+C = {width})"
            )
        return None

    def detect(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes xyxy, scores, class ids) kept, in model-input pixels."""
        th = self._th
        boxes, scores, ids = decode_yolo(np.asarray(output, np.float32), len(self._labels), th.min_confidence)
        keep = batched_nms(boxes, scores, ids, th.iou)[: th.max_detections]
        return boxes[keep], scores[keep], ids[keep]
