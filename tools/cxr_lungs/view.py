"""What the detector sees: the whole film (manifest ``input.view`` "frame"), gray, letterboxed to
SIZE x SIZE, built by the runtime's own ``Preprocessor.fit`` so training inputs are the runtime's."""

from __future__ import annotations

import numpy as np

from edge.inference.manifest import InputSpec, Normalize
from edge.inference.preprocess import Preprocessor, Transform

SIZE = 128
SCALE = 1.0 / 255.0
MEAN = 0.5
STD = 0.25
INPUT_NAME = "images"
_PRE: list[Preprocessor] = []  # one per process: fit() reuses its buffers


def input_spec() -> InputSpec:
    return InputSpec(
        name=INPUT_NAME,
        shape=(1, 1, SIZE, SIZE),
        color="gray",
        resize="letterbox",
        normalize=Normalize(scale=SCALE, mean=(MEAN,), std=(STD,)),
    )


def to_input(gray: np.ndarray) -> tuple[np.ndarray, Transform]:
    """A gray film -> (SIZE x SIZE uint8 model input before scaling, frame <-> input transform)."""
    if not _PRE:
        _PRE.append(Preprocessor(input_spec()))
    out, transform = _PRE[0].fit(gray)
    return out.copy(), transform


def normalize(small: np.ndarray) -> np.ndarray:
    """uint8 [..., SIZE, SIZE] -> float32, ``(x * SCALE - MEAN) / STD`` as the runtime computes it."""
    x = small.astype(np.float32)
    return ((x * np.float32(SCALE) - np.float32(MEAN)) / np.float32(STD)).astype(np.float32, copy=False)
