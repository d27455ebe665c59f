"""What the finding model sees: the whole film (``input.view`` "frame"), gray, stretched to SIZE x SIZE
(the source resized every film to a square without keeping its aspect, so a film from another
detector is stretched the same way), built by the runtime's own ``Preprocessor.fit``."""

from __future__ import annotations

import numpy as np

from edge.inference.manifest import InputSpec, Normalize
from edge.inference.preprocess import Preprocessor

SIZE = 112
SCALE = 1.0 / 255.0
MEAN = 0.5
STD = 0.25
INPUT_NAME = "images"
_PRE: list[Preprocessor] = []


def input_spec() -> InputSpec:
    return InputSpec(
        name=INPUT_NAME,
        shape=(1, 1, SIZE, SIZE),
        color="gray",
        resize="stretch",
        normalize=Normalize(scale=SCALE, mean=(MEAN,), std=(STD,)),
    )


def to_input(gray: np.ndarray) -> np.ndarray:
    """A gray film -> the SIZE x SIZE uint8 model input before scaling (a copy)."""
    if not _PRE:
        _PRE.append(Preprocessor(input_spec()))
    return _PRE[0].fit(gray)[0].copy()


def normalize(small: np.ndarray) -> np.ndarray:
    x = small.astype(np.float32)
    return ((x * np.float32(SCALE) - np.float32(MEAN)) / np.float32(STD)).astype(np.float32, copy=False)


def inputs(images: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Films as the runtime feeds them, float32 [n, 1, SIZE, SIZE]."""
    return normalize(np.stack([to_input(g) for g in images])[:, None])
