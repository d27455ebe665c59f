"""Looks of a chest film that must not change the finding, and guards against shortcuts.

The source's films carry burnt-in side markers and text near the edges, and its two classes may
differ in how they were cropped or exposed; a model can learn those instead of the lungs. So every
training film gets a random crop (75-100% of each side) and small rotation, exposure changes, and
with probability one half its borders masked (a band of 0-15% on some sides filled with a constant)
and random markers or text drawn in its corners, in both classes alike.
"""

from __future__ import annotations

import cv2
import numpy as np


def augment(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = gray.shape
    out = gray
    if rng.random() < 0.5:
        out = out[:, ::-1]
    sw, sh = rng.uniform(0.75, 1.0, 2)
    cw, ch = int(w * sw), int(h * sh)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    m = cv2.getRotationMatrix2D((x0 + cw / 2, y0 + ch / 2), rng.uniform(-7, 7), 1.0)
    m[:, 2] -= (x0, y0)
    out = cv2.warpAffine(np.ascontiguousarray(out), m, (cw, ch), borderMode=cv2.BORDER_REFLECT)
    out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    x = out.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.6, 1.6)
    x = (x - x.mean()) * rng.uniform(0.75, 1.3) + x.mean() + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.25:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.2))
    x = x + rng.normal(0, rng.uniform(0, 0.03), x.shape).astype(np.float32)
    out = (x.clip(0, 1) * 255).astype(np.uint8)
    if rng.random() < 0.5:
        _mask_borders(out, rng)
    if rng.random() < 0.5:
        _markers(out, rng)
    return out


def _mask_borders(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape
    value = int(rng.choice([0, 255, int(rng.integers(0, 256))]))
    for side in range(4):
        if rng.random() < 0.5:
            continue
        band = int(rng.uniform(0.0, 0.15) * (w if side < 2 else h))
        if band == 0:
            continue
        if side == 0:
            img[:, :band] = value
        elif side == 1:
            img[:, w - band :] = value
        elif side == 2:
            img[:band] = value
        else:
            img[h - band :] = value


def _markers(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape
    for _ in range(int(rng.integers(1, 3))):
        text = str(rng.choice(["L", "R", "AP", "PA", "SUPINE", "PORT"]))
        x = int(rng.choice([rng.uniform(0.02, 0.15), rng.uniform(0.7, 0.9)]) * w)
        y = int(rng.choice([rng.uniform(0.08, 0.18), rng.uniform(0.85, 0.97)]) * h)
        cv2.putText(
            img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.3, 0.7), int(rng.integers(180, 256)), 1
        )
