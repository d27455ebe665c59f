"""Real lung clips (``pocus_dev``): which frames of a clip are used.

Clips carry a clip-level B-line label only (``tools.modelkit.grouped.b_line_label``); which clips
a model trains on is decided per fold by source (``loso``), never by frame.
"""

from __future__ import annotations

import numpy as np


def subsample(frames: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` frames spread evenly over the clip."""
    if len(frames) <= limit:
        return frames
    return frames[np.linspace(0, len(frames) - 1, limit).round().astype(int)]
