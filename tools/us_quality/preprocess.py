"""The model's input preprocessing.

``edge/inference/`` mirrors this function exactly (grayscale as OpenCV makes it from BGR, the
runtime's own ``area_resize`` stretch to 128x128, ``(x / 255 - 0.5) / 0.25``); any change here must
be made there too and recorded in the manifest, or the runtime feeds the model something it was
not trained on. The gray conversion is the one the clips are read with (``tools.modelkit.pocus``).
"""

from __future__ import annotations

import numpy as np

from edge.inference.preprocess import area_resize
from tools.modelkit.pocus import to_gray

SIZE = 128
SCALE = 1.0 / 255.0  # 0.00392156862745098, written to the manifest as is
MEAN = 0.5
STD = 0.25


def resize(image: np.ndarray) -> np.ndarray:
    """uint8 frame (HxW gray or HxWx3 BGR) -> gray uint8 128x128, stretched (no letterbox)."""
    return area_resize(to_gray(image), (SIZE, SIZE))


def normalize(small: np.ndarray) -> np.ndarray:
    """uint8 ...x128x128 -> float32 of the same shape, ``(x * scale - mean) / std``."""
    x = small.astype(np.float32)
    return ((x * np.float32(SCALE) - np.float32(MEAN)) / np.float32(STD)).astype(np.float32, copy=False)


def preprocess(image: np.ndarray) -> np.ndarray:
    """uint8 frame (HxW gray or HxWx3 BGR) -> float32 tensor [1, 1, 128, 128] (NCHW)."""
    return normalize(resize(image))[None, None, :, :]
