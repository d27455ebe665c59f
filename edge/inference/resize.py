"""The antialiased downscale every model input goes through (the frame view and the sector views)."""

from __future__ import annotations

import cv2
import numpy as np


def area_resize(src: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
    """Antialiased downscale to ``size`` (w, h): bilinear to the nearest integer multiple, then area.

    OpenCV's INTER_AREA is fast for integer factors and 2-4x slower for others (0.30 against
    0.14 ms for 382->128 on this project's 2-core reference box); the result differs from plain
    INTER_AREA by at most one grey level. Models are trained through this same function.
    """
    w, h = size
    ih, iw = src.shape[:2]
    kx, ky = max(1, round(iw / w)), max(1, round(ih / h))
    if (iw, ih) != (w * kx, h * ky):
        src = cv2.resize(src, (w * kx, h * ky), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(src, (w, h), dst=dst, interpolation=cv2.INTER_AREA)
