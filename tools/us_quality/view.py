"""What the model sees: the imaging sector, cropped and intensity-normalised (manifest ``input.view``).

Training samples are degraded at full frame size with a known sector mask, then passed through the
runtime's own ``Preprocessor.fit`` with that sector (:func:`to_input`): crop to the sector's box, 0
outside its mask, stretch resize, one brightness gain from the pixels inside (capped), exactly as
``edge run`` will build the input. So a darker or brighter scanner and another screen layout reach
the model the way the runtime will show them. Only the sector is given (the clip's, found by the
runtime's ``find_sector`` over the clip's frames, moved with the sample's crops and flips) rather
than searched for again on each sample: a degraded sample (a probe in air) is a frame the runtime
meets after it found the sector on good ones.

``"frame"`` is the 1.x input (the whole frame stretched), kept for comparison.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from edge.inference.manifest import InputSpec, Normalize
from edge.inference.preprocess import Preprocessor
from edge.inference.sector import Sector
from tools.us_quality.preprocess import MEAN, SCALE, SIZE, STD

View = Literal["frame", "sector"]
VIEW: View = "sector"
_PREPROCESSORS: dict[str, Preprocessor] = {}  # one per view and process: fit() reuses its buffers


def input_spec(view: View = VIEW) -> InputSpec:
    """The manifest's input: gray SIZE x SIZE, stretched, ``view``, ``(x * SCALE - MEAN) / STD``."""
    return InputSpec(
        name="input",
        shape=(1, 1, SIZE, SIZE),
        color="gray",
        resize="stretch",
        view=view,
        normalize=Normalize(scale=SCALE, mean=(MEAN,), std=(STD,)),
    )


def sector_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 (exclusive) of the mask's pixels; the whole frame for an empty mask."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return (0, 0, mask.shape[1], mask.shape[0])
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def sector_of(mask: np.ndarray) -> Sector:
    """A runtime ``Sector`` for a known mask (its kind and fan parameters do not matter to the view)."""
    h, w = mask.shape
    m = mask.astype(bool)
    if not m.any():
        m = np.ones_like(m)
    return Sector(w, h, "linear", sector_box(m), m.astype(np.uint8) * 255)


def to_input(gray: np.ndarray, mask: np.ndarray, view: View = VIEW) -> np.ndarray:
    """Full-size gray frame and its sector mask -> the model's SIZE x SIZE uint8 input (before scaling)."""
    pre = _PREPROCESSORS.get(view)
    if pre is None:
        pre = _PREPROCESSORS[view] = Preprocessor(input_spec(view))
    out, _ = pre.fit(gray) if view == "frame" else pre.fit(gray, sector_of(mask))
    return out.copy()
