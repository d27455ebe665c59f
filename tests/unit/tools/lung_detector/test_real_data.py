"""Which frames of a real clip are used."""

from __future__ import annotations

import numpy as np

from tools.lung_detector.real_data import subsample


def test_subsample_spreads_evenly() -> None:
    frames = np.arange(10)[:, None, None] * np.ones((1, 2, 2), np.uint8)
    assert subsample(frames, 3)[:, 0, 0].tolist() == [0, 4, 9]
    assert len(subsample(frames, 20)) == 10
