"""One DICOM file, checked before any pixel is decoded: header, transfer syntax and decoder, the
pixel data's length, the safe metadata, the geometry (pixel spacing, ultrasound regions) and the
frame rate. ``edge.sources.dicom`` turns what this finds into paced frames.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from edge.errors import CorruptInputError, SourceError, UnsupportedSourceError
from edge.frames import Geometry, Modality, UltrasoundRegion
from edge.sources._common import check_readable
from edge.sources.dicom_render import Renderer, photometric_of, renderer

log = logging.getLogger(__name__)

_DEFER_SIZE = "64 KB"  # header reads leave larger values (the pixel data) on disk
_PIXEL_DATA = 0x7FE00010
_MODALITIES: dict[str, Modality] = {"US": "US", "CR": "CR", "DX": "DX"}
_SAFE_META = ("Modality", "Manufacturer", "ManufacturerModelName", "PhotometricInterpretation", "BitsStored")
# X-ray exposure and positioning (IEC 62494-1 indices as floats), burned-in text, and the object's UIDs
# (device-local: the SOP Instance UID finds the stored file; never uplinked).
_XRAY_META = (
    "BodyPartExamined",
    "ViewPosition",
    "DetectorID",
    "BurnedInAnnotation",
    "SOPClassUID",
    "SOPInstanceUID",
)
_FLOAT_META = ("ExposureIndex", "TargetExposureIndex", "DeviationIndex")


class NoPixelDataError(UnsupportedSourceError):
    """A DICOM object that holds no image (a structured report, a presentation state)."""


@dataclass(frozen=True, slots=True)
class DicomImage:
    """One readable DICOM image file, as probed at open (header only, pixels left on disk)."""

    path: Path
    n_frames: int
    decode_from: Path | Dataset  # the path (frames read one by one); a deflated file's inflated dataset
    decode_kwargs: dict[str, Any]
    frame_by_frame: bool  # one iter_pixels call per frame (native YBR_FULL_422, see _decode_frames)
    render: Renderer
    modality: Modality
    geometry: Geometry
    meta: dict[str, Any]
    fps: float | None


# -- probing ---------------------------------------------------------------------------------------------
def probe(path: Path) -> DicomImage:
    """Read ``path``'s header and check that its pixels can be decoded; raise SourceError if not."""
    check_readable(path)  # else pydicom's PermissionError would read as a malformed header
    ds, truncated = _read_header(path)
    tsyntax, decode_kwargs = _transfer_syntax(ds)
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedSourceError(f"{path}: float pixel data is not supported")
        if truncated:
            raise CorruptInputError(f"{path}: truncated: the file ends inside its encapsulated Pixel Data")
        sop = ds.get("SOPClassUID")
        kind = f" ({UID(str(sop)).name})" if sop else ""
        raise NoPixelDataError(f"{path}: no Pixel Data element: not an image{kind}")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1))
    except (AttributeError, TypeError, ValueError) as exc:
        raise CorruptInputError(f"{path}: malformed image attributes: {exc}") from exc
    if rows <= 0 or cols <= 0 or n_frames <= 0:
        raise CorruptInputError(f"{path}: malformed image size {rows}x{cols}x{n_frames}")
    if not tsyntax.is_compressed:
        _check_native_length(path, ds, on_disk=not tsyntax.is_deflated)
    _check_decoder(path, tsyntax)
    render = renderer(path, ds, samples)
    return DicomImage(
        path=path,
        n_frames=n_frames,
        decode_from=ds if tsyntax.is_deflated else path,
        decode_kwargs=decode_kwargs,
        frame_by_frame=not tsyntax.is_compressed and photometric_of(ds) == "YBR_FULL_422",
        render=render,
        modality=_MODALITIES.get(str(ds.get("Modality", "")).upper(), "OT"),
        geometry=geometry(ds),
        meta=_safe_meta(path, ds, tsyntax, n_frames),
        fps=frame_rate(ds),
    )


def _read_header(path: Path) -> tuple[Dataset, bool]:
    """The dataset with its pixel data deferred, and whether pydicom hit the end of file early."""
    ds: Dataset
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, defer_size=_DEFER_SIZE)
        except InvalidDicomError:
            ds = _read_forced(path)
        except OSError as exc:  # the file went away or the disk failed under the read: not malformed
            raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except Exception as exc:
            raise CorruptInputError(
                f"{path}: cannot parse the DICOM header ({type(exc).__name__}: {exc}); truncated or malformed"
            ) from exc
    truncated = any("End of file" in str(w.message) for w in caught)
    return ds, truncated


def _read_forced(path: Path) -> Dataset:
    """A file without the 'DICM' preamble is accepted only if it parses into an image (old ACR-NEMA)."""
    reason = "no 'DICM' preamble"
    try:
        ds = pydicom.dcmread(path, defer_size=_DEFER_SIZE, force=True)
    except Exception as exc:
        raise UnsupportedSourceError(f"{path}: not a DICOM file ({reason}; not parseable: {exc})") from exc
    if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
        raise UnsupportedSourceError(f"{path}: not a DICOM file ({reason}, and no image in it)")
    return ds


def _transfer_syntax(ds: Dataset) -> tuple[UID, dict[str, Any]]:
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if tsyntax:
        return UID(str(tsyntax)), {}
    implicit, little = ds.original_encoding
    if implicit:
        guessed = ImplicitVRLittleEndian
    else:
        guessed = ExplicitVRLittleEndian if little in (True, None) else ExplicitVRBigEndian
    return guessed, {"transfer_syntax_uid": guessed}


def _check_native_length(path: Path, ds: Dataset, on_disk: bool) -> None:
    """Native pixel data must be as long as it says and as the image needs (deflated: inflated size)."""
    elem = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    if not on_disk:
        elem = ds["PixelData"]
        declared = held = len(elem.value)
    elif isinstance(elem, RawDataElement):
        declared = int(elem.length)
        # a deferred value is still on disk: compare with what the file holds after its start
        held = path.stat().st_size - int(elem.value_tell or 0) if elem.value is None else len(elem.value)
    else:
        declared = held = len(elem.value)
    if held < declared:
        raise CorruptInputError(f"{path}: truncated: Pixel Data declares {declared} bytes, file holds {held}")
    try:
        expected = int(get_expected_length(ds))
    except Exception as exc:
        raise CorruptInputError(f"{path}: malformed image attributes: {exc}") from exc
    if declared < expected:
        raise CorruptInputError(
            f"{path}: truncated or malformed: Pixel Data holds {declared} bytes, the image needs {expected}"
        )


def _check_decoder(path: Path, tsyntax: UID) -> None:
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError as exc:
        raise UnsupportedSourceError(
            f"{path}: pydicom has no decoder for transfer syntax {tsyntax.name} ({tsyntax})"
        ) from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise UnsupportedSourceError(
            f"{path}: cannot decode transfer syntax {tsyntax.name}: install one of the plugins ({missing})"
        )


def _safe_meta(path: Path, ds: Dataset, tsyntax: UID, n_frames: int) -> dict[str, Any]:
    """Attributes that carry no patient identity (no names, ids or dates)."""
    meta: dict[str, Any] = {}
    for key in _SAFE_META:
        value = ds.get(key)
        if value is not None and value != "":
            meta[key] = int(value) if key == "BitsStored" else str(value)
    for key in _XRAY_META:
        value = ds.get(key)
        if value is not None and str(value).strip():
            meta[key] = str(value).strip()
    for key in _FLOAT_META:
        try:
            number = float(ds.get(key)) if ds.get(key) not in (None, "") else None
        except (TypeError, ValueError):
            log.warning("%s: ignoring a malformed %s %r", path, key, ds.get(key))
            continue
        if number is not None and math.isfinite(number):
            meta[key] = number
    meta["NumberOfFrames"] = n_frames
    meta["TransferSyntaxUID"] = str(tsyntax)
    meta["file"] = str(path)
    return meta


# -- geometry and timing -----------------------------------------------------------------------------------
def _float_pair(value: Any) -> tuple[float, float] | None:
    try:
        row, col = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (row, col) if row > 0 and col > 0 else None


def _mm(delta: Any, units: Any) -> float | None:
    """A region's physical delta in mm when its units are cm (code 3), else None."""
    try:
        if int(units) != 3 or delta is None:
            return None
        value = abs(float(delta)) * 10.0
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def geometry(ds: Dataset) -> Geometry:
    """PixelSpacing, else ImagerPixelSpacing, else the first 2D ultrasound region's deltas; US regions."""
    regions: list[UltrasoundRegion] = []
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
        try:
            regions.append(
                UltrasoundRegion(
                    x0=int(item.RegionLocationMinX0),
                    y0=int(item.RegionLocationMinY0),
                    x1=int(item.RegionLocationMaxX1),
                    y1=int(item.RegionLocationMaxY1),
                    spatial_format=int(item.get("RegionSpatialFormat", 0) or 0),
                    data_type=int(item.get("RegionDataType", 0) or 0),
                    delta_x_mm=_mm(item.get("PhysicalDeltaX"), item.get("PhysicalUnitsXDirection", 0)),
                    delta_y_mm=_mm(item.get("PhysicalDeltaY"), item.get("PhysicalUnitsYDirection", 0)),
                )
            )
        except (AttributeError, TypeError, ValueError) as exc:
            log.debug("ignoring a malformed ultrasound region: %s", exc)
    spacing = _float_pair(ds.get("PixelSpacing")) or _float_pair(ds.get("ImagerPixelSpacing"))
    depth: float | None = None
    for region in regions:
        if region.spatial_format == 1 and region.delta_x_mm and region.delta_y_mm:  # 1 = 2D
            spacing = spacing or (region.delta_y_mm, region.delta_x_mm)
            depth = (region.y1 - region.y0 + 1) * region.delta_y_mm
            break
    return Geometry(pixel_spacing_mm=spacing, depth_mm=depth, regions=tuple(regions))


def frame_rate(ds: Dataset) -> float | None:
    """Frames per second from FrameTime (ms), CineRate or RecommendedDisplayFrameRate."""
    for key, to_fps in (
        ("FrameTime", lambda v: 1000.0 / v),
        ("CineRate", lambda v: v),
        ("RecommendedDisplayFrameRate", lambda v: v),
    ):
        try:
            value = float(ds.get(key) or 0)
        except (TypeError, ValueError):
            continue
        if value > 0 and math.isfinite(value):
            fps = float(to_fps(value))
            if 0 < fps <= 1000:
                return fps
    return None
