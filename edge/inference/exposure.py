"""Exposure QA of an X-ray (IEC 62494-1): the deviation index of the image's exposure index from its
target, its band, and what the radiographer should do about it, from the frame's DICOM meta.

DI = 10 log10(EI / EI_T): 0 on target, +3 about twice the target dose, -3 about half. The target is
the file's TargetExposureIndex, else the configured one for its DetectorID, else for its
BodyPartExamined (``[xray.exposure_targets]``). Without both EI and a target the file's own
DeviationIndex is used, and said so; without either, "no exposure index in the file": nothing is
guessed from the pixels. Bands and their source: :mod:`edge.settings.xray`, docs/xray.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from edge.settings.xray import ExposureBands, XraySettings
from edge.xray_qa import NO_EXPOSURE_INDEX, REPEAT, Exposure, ExposureBand


def _positive(value: Any) -> float | None:
    number = _finite(value)
    return number if number is not None and number > 0 else None


def _finite(value: Any) -> float | None:
    """A DICOM number as the sources hand it (str or float); None for absent or malformed."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


_UNSAFE = re.compile(r"[^A-Za-z0-9 _.-]")


def code_of(meta: Mapping[str, Any], key: str) -> str | None:
    """A code from the file (BodyPartExamined, DetectorID) as it may appear in a message: a console's
    odd characters become "_", and it is cut to 32, so the message stays one the scrubber keeps."""
    value = meta.get(key)
    text = "" if value is None else _UNSAFE.sub("_", str(value).strip())[:32]
    return text or None


def target_for(meta: Mapping[str, Any], settings: XraySettings) -> tuple[float | None, str | None]:
    """The target exposure index and where it came from: the file, the detector's, the body part's."""
    in_file = _positive(meta.get("TargetExposureIndex"))
    if in_file is not None:
        return in_file, "file"
    targets = settings.exposure_targets
    detector = str(meta.get("DetectorID") or "").strip()
    if detector and detector in targets.detector:
        return targets.detector[detector], f"detector {code_of(meta, 'DetectorID')}"
    part = str(meta.get("BodyPartExamined") or "").strip().upper()
    if part and part in targets.body_part:
        return targets.body_part[part], f"body part {code_of(meta, 'BodyPartExamined')}"
    return None, None


def band_of(di: float, bands: ExposureBands) -> ExposureBand:
    if abs(di) <= bands.within:
        return "within"
    if di > bands.over_far:
        return "over_far"
    if di > 0:
        return "over"
    return "under_far" if di < bands.under_far else "under"


def clipped_fraction(raw: np.ndarray | None, bits_stored: Any) -> float | None:
    """Share of the stored values at the top of the detector's range (saturated), where known."""
    bits = _positive(bits_stored)
    if raw is None or bits is None or not np.issubdtype(raw.dtype, np.integer) or raw.size == 0:
        return None
    top = (1 << int(bits)) - 1
    return float(np.count_nonzero(raw >= top)) / raw.size


def _words(band: ExposureBand, di: float, clipped: float | None, bands: ExposureBands) -> tuple[str, bool]:
    """The radiographer's message for a band, and whether it recommends a repeat now."""
    dose = 10 ** (di / 10)  # DI is 10 log10 of the dose ratio
    at = f"DI {di:+.1f}"
    if band == "within":
        return f"exposure on target ({at})", False
    if band == "over":
        return f"overexposed ({at}): check the technique", False
    if band == "under":
        return f"underexposed ({at}): noisier image, read with care", False
    if band == "under_far":
        return f"{REPEAT}: underexposed ({at}, about {dose:.1f}x the target dose)", True
    if clipped is not None and clipped >= bands.clipped_fraction:
        return f"{REPEAT}: overexposed and clipped ({at}, {clipped:.0%} of pixels saturated)", True
    return (
        f"overexposed ({at}, about {dose:.1f}x the target dose): repeat only if anatomy is burned out",
        False,
    )


def assess_exposure(meta: Mapping[str, Any], raw: np.ndarray | None, settings: XraySettings) -> Exposure:
    """The exposure verdict of one X-ray from its meta (ExposureIndex, TargetExposureIndex,
    DeviationIndex, DetectorID, BodyPartExamined, BitsStored) and its stored values (``raw``)."""
    bands = settings.exposure_bands
    ei = _positive(meta.get("ExposureIndex"))
    target, target_from = target_for(meta, settings)
    file_di = _finite(meta.get("DeviationIndex"))
    clipped = clipped_fraction(raw, meta.get("BitsStored"))
    di_from: Literal["computed", "file"]
    if ei is not None and target is not None:
        di, di_from, note = 10 * math.log10(ei / target), "computed", ""
    elif file_di is not None:
        di, di_from = file_di, "file"
        note = (
            "; DI from the file (no exposure index in it)"
            if ei is None
            else f"; DI from the file (EI {ei:g}, no target for it)"
        )
    elif ei is not None:
        part = code_of(meta, "BodyPartExamined") or "this image"
        message = f"EI {ei:g}: no target exposure index for {part} (set [xray.exposure_targets])"
        return Exposure(ei, None, None, None, None, None, message, clipped_fraction=clipped)
    else:
        return Exposure(None, target, None, None, target_from, None, NO_EXPOSURE_INDEX, False, clipped)
    band = band_of(di, bands)
    words, repeat = _words(band, di, clipped, bands)
    return Exposure(ei, target, di, di_from, target_from, band, words + note, repeat, clipped)
