"""Training-time augmentation: what a real scan varies that the phantom does not.

Gain and contrast (operators turn the knobs), a little blur (probes and presets differ), zoom and
shift (depth and probe position), left-right flips (either side of the chest). Boxes follow the
geometry; a box mostly pushed out of the image is dropped.
"""

from __future__ import annotations

import cv2
import numpy as np


def augment(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, boxes, kept box indices) for one uint8 HxW image and xyxy boxes."""
    h, w = image.shape
    s = rng.uniform(0.85, 1.2)
    tx, ty = rng.uniform(-0.08, 0.08) * w, rng.uniform(-0.06, 0.06) * h
    flip = rng.random() < 0.5
    sx = -s if flip else s
    m = np.array([[sx, 0, (w / 2) * (1 - sx) + tx], [0, s, (h / 2) * (1 - s) + ty]], np.float32)
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    # Gain/contrast/gamma in display space.
    lut_x = np.arange(256, dtype=np.float32) / 255.0
    lut = np.clip((lut_x ** rng.uniform(0.7, 1.4)) * rng.uniform(0.75, 1.3) + rng.uniform(-0.06, 0.06), 0, 1)
    out = cv2.LUT(out, (lut * 255).astype(np.uint8))
    if rng.random() < 0.25:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    if len(boxes) == 0:
        return out, boxes, np.zeros(0, np.int64)
    xs = boxes[:, [0, 2]] * sx + m[0, 2]
    ys = boxes[:, [1, 3]] * s + m[1, 2]
    nb = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)
    area = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1])
    clipped = nb.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, w)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, h)
    kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = np.flatnonzero(kept_area >= 0.5 * np.maximum(area, 1e-6))
    return out, clipped[keep].astype(np.float32), keep
