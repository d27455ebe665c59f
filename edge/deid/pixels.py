"""Pixel de-identification: keep only the imaging regions, black out the rest (burned-in text lives there).

For ultrasound the regions are the file's Sequence of Ultrasound Regions, or rectangles configured for
the probe (matched on Manufacturer's Model Name; configured rectangles win, as the operator knows the
device). Rectangles are ``(x0, y0, x1, y1)`` in pixels with *inclusive* corners, the convention of DICOM
RegionLocationMinX0..MaxY1 and of ``edge.frames.UltrasoundRegion``.

Fail closed: an image with Burned In Annotation YES or absent, and nothing to clean it by (no regions,
no configured rectangles), or whose pixels cannot be decoded, is refused: it must not be uploaded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, pixel_array
from pydicom.uid import ExplicitVRLittleEndian

from edge.deid.errors import DeidError

log = logging.getLogger(__name__)

Rect = tuple[int, int, int, int]
# Photometric interpretations pydicom hands back as RGB when decoding (YBR_* converted; J2K's RCT/ICT undone).
_TO_RGB = {"YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT"}
_KEPT = {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB"}


def check_rects(rects: Sequence[Sequence[int]], where: str = "rectangle") -> list[Rect]:
    """``rects`` as validated int tuples; a malformed one raises DeidError naming it."""
    out: list[Rect] = []
    for i, r in enumerate(rects):
        if len(r) != 4:
            raise DeidError(f"{where} {i}: expected (x0, y0, x1, y1), got {list(r)!r}")
        try:
            x0, y0, x1, y1 = (int(v) for v in r)
        except (TypeError, ValueError):
            raise DeidError(f"{where} {i}: coordinates must be integers, got {list(r)!r}") from None
        if min(x0, y0) < 0 or x1 < x0 or y1 < y0:
            raise DeidError(f"{where} {i}: need 0 <= x0 <= x1 and 0 <= y0 <= y1, got {(x0, y0, x1, y1)}")
        out.append((x0, y0, x1, y1))
    return out


def region_mask(height: int, width: int, rects: Sequence[Sequence[int]]) -> np.ndarray:
    """A height x width bool array, True inside the union of ``rects`` (inclusive corners, clipped)."""
    inside = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in check_rects(rects):
        inside[y0 : min(y1, height - 1) + 1, x0 : min(x1, width - 1) + 1] = True
    return inside


def blackout_outside(
    image: np.ndarray, rects: Sequence[tuple[int, int, int, int]], fill: float = 0
) -> np.ndarray:
    """A copy of ``image`` (HxW or HxWxC) with every pixel outside the union of ``rects`` set to ``fill``.

    ``rects`` are (x0, y0, x1, y1) with inclusive corners; no rectangle blacks out the whole image. Used
    for DICOM frames here and for the runtime's live frames and thumbnails, so both are masked alike.
    """
    if image.ndim not in (2, 3):
        raise DeidError(f"blackout_outside: expected an HxW or HxWxC image, got shape {image.shape}")
    inside = region_mask(image.shape[0], image.shape[1], rects)
    out = image.copy()
    out[~inside] = fill
    return out


def ultrasound_regions(ds: Dataset) -> list[Rect]:
    """The pixel rectangles of the Sequence of Ultrasound Regions; a malformed item raises DeidError."""
    rects: list[Rect] = []
    for i, item in enumerate(ds.get("SequenceOfUltrasoundRegions", None) or []):
        try:
            rects.append(
                (
                    int(item.RegionLocationMinX0),
                    int(item.RegionLocationMinY0),
                    int(item.RegionLocationMaxX1),
                    int(item.RegionLocationMaxY1),
                )
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise DeidError(
                f"(0018,6011) Sequence of Ultrasound Regions item {i}: malformed ({exc})"
            ) from None
    return check_rects(rects, "(0018,6011) Sequence of Ultrasound Regions item")


@dataclass(frozen=True)
class PixelOutcome:
    """What happened to the pixels: kept as they were, cleaned, or refused (not to be uploaded)."""

    action: Literal["none", "kept", "cleaned", "refused"]
    reason: str
    rects: tuple[Rect, ...] = ()


def clean_pixels(
    ds: Dataset, probe_rects: Mapping[str, Sequence[Sequence[int]]] | None = None
) -> PixelOutcome:
    """Decide and, where needed, clean ``ds``'s pixels in place (written back uncompressed, RGB for YBR).

    After cleaning the pixel data is native little endian: the caller must write the file with Explicit
    VR Little Endian. Burned In Annotation is then set to NO.
    """
    if "PixelData" not in ds:
        return PixelOutcome("none", "no pixel data")
    modality = str(ds.get("Modality", "") or "").upper()
    model = str(ds.get("ManufacturerModelName", "") or "").strip()
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    configured = (probe_rects or {}).get(model) if model else None
    if configured is not None:
        rects, source = (
            check_rects(configured, f"configured rectangle for {model!r}"),
            f"rectangles for {model!r}",
        )
    elif modality == "US" and "SequenceOfUltrasoundRegions" in ds:
        rects, source = ultrasound_regions(ds), "ultrasound regions"
    else:
        rects, source = [], ""
    if not rects:
        if burned == "NO":
            return PixelOutcome("kept", "Burned In Annotation is NO")
        state = "YES" if burned == "YES" else "absent (unknown)"
        where = f"modality {modality or '?'}, model {model!r}" if model else f"modality {modality or '?'}"
        return PixelOutcome(
            "refused",
            f"Burned In Annotation is {state} and there is nothing to clean it by "
            f"(no ultrasound regions, no configured rectangles for {where})",
        )
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric not in _KEPT | _TO_RGB:
        return PixelOutcome("refused", f"cannot clean pixels of Photometric Interpretation {photometric!r}")
    try:
        arr = pixel_array(ds)
    except Exception as exc:  # a missing plugin or damaged data: never upload what we could not look at
        return PixelOutcome("refused", f"pixel data cannot be decoded ({type(exc).__name__}: {exc})")
    inside = region_mask(int(ds.Rows), int(ds.Columns), rects)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    fill = _black(ds, photometric)
    if samples > 1:
        arr[..., ~inside, :] = fill
    else:
        arr[..., ~inside] = fill
    _write_native(ds, arr, "RGB" if photometric in _TO_RGB else photometric, samples)
    ds.BurnedInAnnotation = "NO"
    return PixelOutcome("cleaned", f"outside {len(rects)} {source} blacked out", tuple(rects))


def _black(ds: Dataset, photometric: str) -> int:
    """The stored value that displays as black."""
    bits = int(ds.get("BitsStored", 8) or 8)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if photometric == "MONOCHROME1":
        return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    if photometric == "PALETTE COLOR":
        return _darkest_palette_index(ds)
    if photometric == "MONOCHROME2" and signed:
        return -(1 << (bits - 1))
    return 0


def _darkest_palette_index(ds: Dataset) -> int:
    try:
        n, first, _ = (int(v) for v in ds.RedPaletteColorLookupTableDescriptor)
        n = n or 65536  # 0 means 2**16 entries
        indices = np.arange(first, first + n, dtype=np.uint16 if n > 256 or first > 0 else np.uint8)
        rgb = apply_color_lut(indices, ds).astype(np.int64)
    except Exception as exc:
        raise DeidError(f"(0028,1101) palette colour lookup table unusable ({exc})") from exc
    return int(indices[int(np.argmin(rgb.sum(axis=-1)))])


_SWAP = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


def _to_little_endian(ds: Dataset) -> None:
    """Re-encode a big-endian dataset (its pixels already rewritten little endian) for a little-endian write.

    pydicom refuses to convert on write because binary values (palette LUT data is OW) are kept as the
    file's bytes: swap those, parse everything else to values, and mark the dataset little endian.
    """
    for item in _datasets(ds):
        for elem in list(item):
            width = _SWAP.get(elem.VR)
            if width and elem.tag != 0x7FE00010 and isinstance(elem.value, bytes):
                elem.value = np.frombuffer(elem.value, dtype=f">u{width}").astype(f"<u{width}").tobytes()
        item.set_original_encoding(False, True, item.original_character_set)


def _datasets(ds: Dataset) -> Iterator[Dataset]:
    yield ds
    for elem in list(ds):
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _datasets(item)


def _write_native(ds: Dataset, arr: np.ndarray, photometric: str, samples: int) -> None:
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    data = little.tobytes()
    if len(data) % 2:
        data += b"\x00"
    ds.PixelData = data
    ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) <= 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    ds.PhotometricInterpretation = photometric
    if samples > 1:
        ds.PlanarConfiguration = 0
    if ds.original_encoding[1] is False:
        _to_little_endian(ds)
    if getattr(ds, "file_meta", None) is not None:  # the dataset now says what it holds
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
