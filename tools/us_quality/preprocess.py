"""The model's input size and scaling (the manifest's ``input.shape`` and ``input.normalize``).

What of the frame the model sees (the normalised imaging sector) is ``view``'s, built by the
runtime's own ``Preprocessor``; this module only turns those uint8 inputs into the float tensor,
``(x * SCALE - MEAN) / STD``, the same fused multiply-add the runtime does.
"""

from __future__ import annotations

import numpy as np

SIZE = 128
SCALE = 1.0 / 255.0  # 0.00392156862745098, written to the manifest as is
MEAN = 0.5
STD = 0.25


def normalize(small: np.ndarray) -> np.ndarray:
    """uint8 ...x128x128 -> float32 of the same shape, ``(x * scale - mean) / std``."""
    x = small.astype(np.float32)
    return ((x * np.float32(SCALE) - np.float32(MEAN)) / np.float32(STD)).astype(np.float32, copy=False)
