"""Classification (the quality meter): one output of a score per label -> a Quality verdict."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.errors import ModelError
from edge.inference.manifest import Manifest
from edge.inference.preprocess import Transform
from edge.inference.shapes import Shape, fmt, static
from edge.inference.tasks.base import ImageTask, TaskOutput
from edge.results import Quality


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class ClassificationTask(ImageTask):
    """The top label of the first output, its probability, and whether it is an ``ok_label``.

    The output is softmax-ed when the manifest says it is ``logits``, used as it is when it says
    ``probabilities``.
    """

    name = "classification"

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        self._labels = manifest.labels
        self._ok = frozenset(manifest.ok_labels)
        self._logits = manifest.outputs[0].kind == "logits"

    def decode(
        self, outputs: Sequence[np.ndarray], transform: Transform, frame_hw: tuple[int, int]
    ) -> TaskOutput:
        return TaskOutput(quality=self.quality(outputs[0]))

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
        label = self._labels[k]
        return Quality(
            label=label,
            score=float(probs[k]),
            ok=label in self._ok,
            probabilities={lab: float(p) for lab, p in zip(self._labels, probs)},
        )
