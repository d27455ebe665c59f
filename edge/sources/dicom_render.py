"""DICOM pixels -> display image: LUTs, windows and palettes, kept apart from file handling.

Each renderer maps one decoded frame to (BGR uint8 display image, raw stored values or None);
``renderer()`` picks the one for the file's photometric interpretation. See ``dicom.py`` for the
rules in words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi

from edge.errors import UnsupportedSourceError

log = logging.getLogger(__name__)
_COLOR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "YBR_PARTIAL_420"})
Renderer = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]


def _domain(dtype: np.dtype) -> np.ndarray | None:
    """Every value a 1- or 2-byte integer dtype can hold, in the order of its unsigned bit pattern."""
    if dtype.kind not in "iu" or dtype.itemsize > 2:
        return None
    unsigned = np.dtype(f"u{dtype.itemsize}")
    return np.arange(2 ** (8 * dtype.itemsize), dtype=unsigned).view(dtype.newbyteorder("="))


def _lookup(lut: np.ndarray, arr: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, lut[arr.view(np.dtype(f"u{arr.dtype.itemsize}"))])


def _native(arr: np.ndarray) -> np.ndarray:
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _first(value: Any) -> float:
    """The first of a multi-valued attribute (several windows: use the first), or the value itself."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return float(value[0])
    return float(value)


class _Mono:
    """MONOCHROME1/2 -> BGR uint8 through a lookup table over every stored value (8/16-bit data)."""

    def __init__(self, path: Path, ds: Dataset, invert: bool) -> None:
        self.path, self.ds, self.invert = path, ds, invert
        self.bits_stored = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
        self.has_modality = bool(ds.get("ModalityLUTSequence")) or (
            float(ds.get("RescaleSlope", 1) or 1) != 1.0 or float(ds.get("RescaleIntercept", 0) or 0) != 0.0
        )
        self.voi_range: tuple[float, float] | None = None
        self.window: tuple[float, float, str] | None = None
        if ds.get("VOILUTSequence"):
            desc = [int(v) for v in ds.VOILUTSequence[0].LUTDescriptor]
            entries = np.arange(desc[1], desc[1] + (desc[0] or 65536), dtype=np.int64)
            table = apply_voi(entries, ds, index=0)
            self.voi_range = (float(table.min()), float(table.max()))
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            try:
                center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
            except (TypeError, ValueError, IndexError):
                center, width = 0.0, 0.0
            function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
            if width >= 1 or (function != "LINEAR" and width > 0):
                self.window = (center, width, function)
            else:
                log.warning("%s: ignoring invalid window width %r", path, ds.WindowWidth)
        self._luts: dict[np.dtype, np.ndarray | None] = {}

    def _unit(self, values: np.ndarray) -> np.ndarray | None:
        """Modality values -> [0, 1] by the VOI LUT or window; None where min-max per frame is needed."""
        if self.voi_range is not None:
            lo, hi = self.voi_range
            out = apply_voi(np.rint(values).astype(np.int64), self.ds, index=0).astype(np.float64)
            return (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
        if self.window is not None:
            c, w, function = self.window
            if function == "SIGMOID":
                return cast(np.ndarray, 1.0 / (1.0 + np.exp(-4.0 * (values - c) / w)))
            if function == "LINEAR_EXACT":
                return np.clip((values - c) / w + 0.5, 0.0, 1.0)
            if w == 1:
                return (values > c - 0.5).astype(np.float64)
            return np.clip((values - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
        if self.bits_stored <= 8 and not self.has_modality:
            return np.clip(values / (2**self.bits_stored - 1), 0.0, 1.0)
        return None

    def _to_uint8(self, unit: np.ndarray) -> np.ndarray:
        if self.invert:
            unit = 1.0 - unit
        return np.rint(unit * 255.0).astype(np.uint8)

    def _lut(self, dtype: np.dtype) -> np.ndarray | None:
        if dtype not in self._luts:
            domain = _domain(dtype)
            unit = None
            if domain is not None:
                unit = self._unit(np.asarray(apply_modality_lut(domain, self.ds), dtype=np.float64))
            self._luts[dtype] = None if unit is None else self._to_uint8(unit)
        return self._luts[dtype]

    def __call__(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        arr = _native(arr)
        lut = self._lut(arr.dtype)
        if lut is not None:
            gray = _lookup(lut, arr)
        else:
            values = np.asarray(apply_modality_lut(arr, self.ds), dtype=np.float32)
            unit = self._unit(values)
            if unit is None:
                lo, hi = float(values.min()), float(values.max())
                unit = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
            gray = self._to_uint8(unit)
        return cast(np.ndarray, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)), arr


class _Palette:
    """PALETTE COLOR -> BGR uint8 through the palette, built once over every index value."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._luts: dict[np.dtype, np.ndarray] = {}

    def __call__(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        arr = _native(arr)
        lut = self._luts.get(arr.dtype)
        if lut is None:
            domain = _domain(arr.dtype)
            if domain is None:
                raise ValueError(f"palette indices of type {arr.dtype} are not supported")
            rgb = np.asarray(apply_color_lut(domain, self.ds))
            if rgb.dtype != np.uint8:
                rgb = rgb >> 8 if int(rgb.max()) > 255 else rgb
            lut = np.ascontiguousarray(rgb[:, ::-1].astype(np.uint8))
            self._luts[arr.dtype] = lut
        return _lookup(lut, arr), arr


class _Color:
    """RGB (pydicom has already converted YBR) -> BGR uint8; deeper data shifted down to 8 bits."""

    def __init__(self, ds: Dataset) -> None:
        self.shift = max(0, int(ds.get("BitsStored", 8) or 8) - 8)

    def __call__(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if arr.dtype == np.uint8:
            return cast(np.ndarray, cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGR)), None
        arr = _native(arr)
        eight = np.ascontiguousarray((arr >> self.shift).astype(np.uint8))
        return cast(np.ndarray, cv2.cvtColor(eight, cv2.COLOR_RGB2BGR)), arr


def photometric_of(ds: Dataset) -> str:
    return str(ds.get("PhotometricInterpretation", "")).strip().upper()


def renderer(path: Path, ds: Dataset, samples: int) -> Renderer:
    photometric = photometric_of(ds)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    if photometric in ("MONOCHROME1", "MONOCHROME2") and samples == 1:
        return _Mono(path, ds, invert=photometric == "MONOCHROME1")
    if photometric == "PALETTE COLOR" and samples == 1 and bits <= 16:
        return _Palette(ds)
    if photometric in _COLOR and samples == 3:
        return _Color(ds)
    raise UnsupportedSourceError(
        f"{path}: photometric interpretation {photometric or '(missing)'!r} with {samples} sample(s) "
        f"and {bits} bits is not supported"
    )
