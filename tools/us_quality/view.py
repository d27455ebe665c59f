"""What the model sees: the imaging sector, cropped and intensity-normalised (manifest ``input.view``).

Training samples are degraded at full frame size with a known sector mask, then passed through the
runtime's own ``Preprocessor.fit`` with that sector (:func:`to_input`): crop to the sector's box, 0
outside its mask, stretch resize, one brightness gain from the pixels inside (capped), exactly as
``edge run`` will build the input. So a darker or brighter scanner and another screen layout reach
the model the way the runtime will show them. Only the sector is given (the clip's, found by the
runtime's ``find_sector`` over the clip's frames, moved with the sample's crops and flips) rather
than searched for again on each sample: a degraded sample (a probe in air) is a frame the runtime
meets after it found the sector on good ones.

``"scanlines"`` resamples a convex fan to scan-line coordinates (rows = depth, columns = beams; the
runtime's ``ScanlineMap``, as the lung detector sees it): a rib shadow is then a dark column band and a
far field beyond the beam's reach a dark bottom band, whatever the fan's angle and depth. The fan is
fitted to the sample's mask (:func:`fan_of`), since a rendered sample's geometry (crop, flip, rescale,
another fan) moves it; a rectangle is cropped and resized.

``"frame"`` is the 1.x input (the whole frame stretched), kept for comparison.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np

from edge.inference.manifest import InputSpec, Normalize
from edge.inference.preprocess import Preprocessor
from edge.inference.sector import Sector, SectorNotFound, find_sector
from tools.us_quality.preprocess import MEAN, SCALE, SIZE, STD

View = Literal["frame", "sector", "scanlines"]
VIEW: View = "scanlines"  # 3.0; "sector" in 2.x
_PREPROCESSORS: dict[str, Preprocessor] = {}  # one per view and process: fit() reuses its buffers
_current: View = VIEW  # the view to_input builds by default (set_view: a comparison run)


def set_view(view: View) -> None:
    """Build every later input of this process (and of workers forked after) in ``view``: how
    ``grouped_cv --view`` measures another view with the same recipe. The published model is VIEW's."""
    global _current
    _current = view


def current_view() -> View:
    return _current


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


def sector_of(mask: np.ndarray, view: View = VIEW) -> Sector:
    """A runtime ``Sector`` for a known mask: for the "scanlines" view a convex fan fitted to it
    where its sides diverge (:func:`fan_of`); otherwise a linear area (the "sector" view uses the
    mask itself, so its kind and fan do not matter there)."""
    h, w = mask.shape
    m = mask.astype(bool)
    if not m.any():
        m = np.ones_like(m)
    u8 = m.astype(np.uint8) * 255
    fan = fan_of(m) if view == "scanlines" else None
    if fan is None:
        return Sector(w, h, "linear", sector_box(m), u8)
    apex, angles, radii = fan
    return Sector(w, h, "convex", sector_box(m), u8, apex, angles, radii)


Fan = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
_FANS: dict[tuple[tuple[int, ...], bytes], Fan | None] = {}  # fan_of's last masks, oldest first


def fan_of(mask: np.ndarray) -> Fan | None:
    """(apex (x, y), side angles from straight down, near and far radius) of the convex fan the
    runtime's ``find_sector`` fits to the mask shown as a uniformly lit image (its arcs and sides
    fitted as for a live frame, a fan cut by the frame's border included); None for a rectangle.
    The last few masks' fans are kept: a clip's untouched frames share one mask."""
    m = np.ascontiguousarray(mask, bool)
    key = (m.shape, hashlib.blake2b(np.packbits(m).tobytes(), digest_size=16).digest())
    if key in _FANS:
        return _FANS[key]
    fan: Fan | None = None
    try:
        s = find_sector([m.astype(np.uint8) * np.uint8(128)])
    except SectorNotFound:
        s = None
    if s is not None and s.kind == "convex" and s.apex and s.angles and s.radii:
        fan = (s.apex, s.angles, s.radii)
    if len(_FANS) >= 64:
        _FANS.pop(next(iter(_FANS)))
    _FANS[key] = fan
    return fan


def to_input(gray: np.ndarray, mask: np.ndarray, view: View | None = None) -> np.ndarray:
    """Full-size gray frame and its sector mask -> the model's SIZE x SIZE uint8 input (before
    scaling), in ``view`` (default: :func:`current_view`)."""
    view = view or current_view()
    pre = _PREPROCESSORS.get(view)
    if pre is None:
        pre = _PREPROCESSORS[view] = Preprocessor(input_spec(view))
    out, _ = pre.fit(gray) if view == "frame" else pre.fit(gray, sector_of(mask, view))
    return out.copy()
