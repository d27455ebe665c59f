"""The Task seam: what one kind of model (the manifest's ``task``) does around the session.

A Task turns a frame's image into the model's input tensor (through the manifest's
:class:`~edge.inference.preprocess.Preprocessor`) and the session's raw outputs into a
:class:`TaskOutput` in frame pixels: a quality verdict, findings, or both. LoadedModel runs the
session between the two and knows nothing about any task; a new task is a module here and one
``register_task`` call (see :mod:`edge.inference.tasks.registry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.inference.manifest import Manifest
from edge.inference.preprocess import Preprocessor, Transform
from edge.results import Finding, Quality
from edge.xray_qa import Heatmap


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """What a task made of one frame's outputs.

    ``masks`` is the room left for segmentation: an HxW class-index map in frame pixels, which a
    future ``tasks/segmentation.py`` fills. Not built yet: no task here sets it, and LoadedModel
    only passes it on in ModelOutput.
    """

    quality: Quality | None = None
    findings: tuple[Finding, ...] = ()
    masks: np.ndarray | None = None
    heatmap: Heatmap | None = None  # a finding model's class-activation map (tasks/classification)


class Task(Protocol):
    name: str  # the manifest ``task`` it serves

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """The model's input tensor for a frame's image (HxW or HxWx3 uint8; the tensor may be
        an internal buffer, valid until the next call) and the transform back to frame pixels."""

    def decode(
        self, outputs: Sequence[np.ndarray], transform: Transform, frame_hw: tuple[int, int]
    ) -> TaskOutput:
        """The session's outputs (in the model's output order) as a TaskOutput in frame pixels;
        ``frame_hw`` is the image's (height, width)."""


class ImageTask:
    """Base of the built-in tasks: the manifest's preprocessing, one reused buffer per model."""

    name = ""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.preprocessor = Preprocessor(manifest.input)

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        return self.preprocessor(image)

    def reset(self) -> None:
        """A new view (another source, a new probe position or depth): the imaging area the
        preprocessor tracks is found again on the next frame."""
        self.preprocessor.reset()
