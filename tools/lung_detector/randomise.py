"""Domain randomisation of phantom frames: what another scanner, preset or operator changes.

Applied in the frame's own pixels, before the runtime's preprocessing (sector, normalisation,
scan lines), so that the model learns what normalisation leaves over and never the phantom's one
look: gray map (gamma and a soft knee), overall gain, a time-gain-compensation slope with depth,
speckle size (blur), lateral resolution, electronic noise and a darker or brighter far field.
The ranges are wide on purpose; a plausible scanner lies inside them.
"""

from __future__ import annotations

import cv2
import numpy as np


def _lut(rng: np.random.Generator) -> np.ndarray:
    x = np.arange(256, dtype=np.float32) / 255.0
    y = x ** rng.uniform(0.55, 1.8)
    knee = rng.uniform(0.6, 1.0)  # a compressive gray map flattens the highlights
    y = np.where(y > knee, knee + (y - knee) * rng.uniform(0.3, 1.0), y)
    y = y * rng.uniform(0.45, 1.6)
    return (np.clip(y, 0, 1) * 255).astype(np.uint8)


def randomise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uint8 gray frame as another scanner might show the same scene."""
    out: np.ndarray = cv2.LUT(image, _lut(rng)).astype(np.float32)
    h, w = out.shape
    # TGC: a linear gain ramp with depth, either way.
    ramp = 1.0 + rng.uniform(-0.45, 0.35) * np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    out = out * ramp
    if rng.random() < 0.6:  # speckle size and resolution differ by probe and preset
        sx, sy = rng.uniform(0.3, 1.8), rng.uniform(0.3, 1.2)
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sx, sigmaY=sy)
    if rng.random() < 0.4:  # a coarser display: down and up again
        f = rng.uniform(0.45, 0.9)
        small = cv2.resize(out, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        noise = rng.normal(0.0, rng.uniform(1.0, 6.0), out.shape)
        out = out + noise * (out > 0)
    return np.clip(out, 0, 255).astype(np.uint8)
