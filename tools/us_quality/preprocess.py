"""The model's input preprocessing.

``edge/inference/`` mirrors this function exactly (grayscale, the runtime's own ``area_resize``
stretch to 128x128, ``(x / 255 - 0.5) / 0.25``); any change here must be made there too and
recorded in the manifest, or the runtime feeds the model something it was not trained on.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.inference.preprocess import area_resize

SIZE = 128
SCALE = 1.0 / 255.0  # 0.00392156862745098, written to the manifest as is
MEAN = 0.5
STD = 0.25


def to_gray(image: np.ndarray) -> np.ndarray:
    """HxW gray as is; HxWx3 is taken as BGR (OpenCV order)."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise ValueError(f"expected HxW or HxWx3 image, got shape {image.shape}")


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
