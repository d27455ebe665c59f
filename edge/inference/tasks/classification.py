"""Classification: one output of a score per label -> a Quality verdict (the quality meter); with a
``heatmap`` output, a finding model (a chest X-ray's normal / pneumonia, say).

A finding model also gives a whole-image Finding (no box) when its top label is not an ``ok_label``,
or when the top label's probability is under ``thresholds.review_below`` (flagged ``needs_review``:
"the model is unsure, read it"), and with it the class-activation map of the finding's label (the
top label; for an unsure ok label, the most probable other one) as a :class:`edge.xray_qa.Heatmap`
in frame pixels, drawn by the overlay.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.errors import ModelError
from edge.inference.manifest import Manifest
from edge.inference.preprocess import Transform
from edge.inference.shapes import Shape, fmt, static
from edge.inference.tasks.base import ImageTask, TaskOutput
from edge.results import Finding, Quality
from edge.xray_qa import Heatmap


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class ClassificationTask(ImageTask):
    """The top label of the scores output, its probability, and whether it is an ``ok_label``.

    A label outside ``ok_labels`` under ``thresholds.fault_min_confidence`` is not called: the
    verdict is then the likeliest ok label (its own probability as the score; every label's
    probability stays in ``probabilities``).

    The output is softmax-ed when the manifest says it is ``logits``, used as it is when it says
    ``probabilities``. Outputs are found by the manifest's order until the session's names are
    known (``bind_outputs``, called at load).
    """

    name = "classification"

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        self._labels = manifest.labels
        self._ok = frozenset(manifest.ok_labels)
        self._logits = manifest.outputs[0].kind == "logits"
        self._review_below = manifest.thresholds.review_below
        self._fault_min = manifest.thresholds.fault_min_confidence
        self._ok_at = [i for i, lab in enumerate(self._labels) if lab in self._ok]
        names = [o.name for o in manifest.outputs]
        self._heatmap_name = next((o.name for o in manifest.outputs if o.kind == "heatmap"), None)
        self._scores_at = 0
        self._heatmap_at = None if self._heatmap_name is None else names.index(self._heatmap_name)

    def bind_outputs(self, names: Sequence[str]) -> None:
        """Where the session puts the scores and the heatmap among its outputs."""
        scores = self.manifest.outputs[0].name
        if scores in names:
            self._scores_at = list(names).index(scores)
        if self._heatmap_name is not None and self._heatmap_name in names:
            self._heatmap_at = list(names).index(self._heatmap_name)

    def decode(
        self, outputs: Sequence[np.ndarray], transform: Transform, frame_hw: tuple[int, int]
    ) -> TaskOutput:
        quality = self.quality(outputs[self._scores_at])
        if self._heatmap_at is None:
            return TaskOutput(quality=quality)
        label = quality.label
        review = quality.score < self._review_below
        if label in self._ok and not review:
            return TaskOutput(quality=quality)
        k = self._labels.index(label)
        finding = Finding(label, quality.score, None, needs_review=review, class_id=k)
        if label in self._ok:  # unsure of "normal": show where the likeliest finding would be
            others = [(p, lab) for lab, p in quality.probabilities.items() if lab not in self._ok]
            k = self._labels.index(max(others)[1]) if others else k
        heatmap = self.heatmap(outputs[self._heatmap_at], k, transform)
        return TaskOutput(quality=quality, findings=(finding,), heatmap=heatmap)

    def heatmap(self, output: np.ndarray, k: int, transform: Transform) -> Heatmap | None:
        """Label ``k``'s map, negative evidence cut, min-max scaled to 0..1, over the frame rectangle
        the model's input covers; None for a non-linear input view (scan lines): it has no rectangle."""
        maps = np.asarray(output, np.float32)
        if maps.ndim == 4 and maps.shape[0] == 1:
            maps = maps[0]
        if maps.ndim != 3 or maps.shape[0] != len(self._labels):
            raise ModelError(
                f"model {self.manifest.name!r}: heatmap output {self._heatmap_name!r} has shape "
                f"{list(np.shape(output))}, not [1, {len(self._labels)}, h, w] (one map per label)"
            )
        if transform.frame_points is not None:
            return None
        cam = np.maximum(np.nan_to_num(maps[k], nan=0.0, posinf=0.0, neginf=0.0), 0.0)
        low, top = float(cam.min()), float(cam.max())
        # Min-max, as CAMs are usually shown: where the model looked most against where it looked least.
        values = ((cam - low) / (top - low) if top > low else np.zeros_like(cam)).astype(np.float32)
        in_h, in_w = self.manifest.input.hw
        x0, y0, x1, y1 = transform.to_frame(np.array([[0.0, 0.0, in_w, in_h]], np.float32))[0]
        return Heatmap(self._labels[k], values, float(x0), float(y0), float(x1), float(y1))

    def check_output(self, name: str, shape: Shape) -> str | None:
        """One score per label: the fixed dimensions must multiply to the label count (with a
        symbolic one, divide it)."""
        n = len(self._labels)
        fixed = [static(d) for d in shape]
        size = 1
        for d in fixed:
            size *= d or 1
        if (None not in fixed and size != n) or (None in fixed and n % size != 0):
            return (
                f"the model's output {name!r} has shape {fmt(shape)}, {size} value(s), "
                f"for the manifest's {n} labels"
            )
        return None

    def quality(self, output: np.ndarray) -> Quality:
        flat = np.asarray(output, np.float32).reshape(-1)
        if flat.size != len(self._labels):
            raise ModelError(
                f"model {self.manifest.name!r}: output has {flat.size} values for {len(self._labels)} labels"
            )
        probs = softmax(flat) if self._logits else flat
        k = int(probs.argmax())
        if self._labels[k] not in self._ok and probs[k] < self._fault_min and self._ok_at:
            # An unsure fault is not called: a red meter over a good image costs the operator the
            # scan, so the model must be sure (the threshold is fixed by the card's grouped figures).
            k = max(self._ok_at, key=lambda i: probs[i])
        label = self._labels[k]
        return Quality(
            label=label,
            score=float(probs[k]),
            ok=label in self._ok,
            probabilities={lab: float(p) for lab, p in zip(self._labels, probs)},
        )
