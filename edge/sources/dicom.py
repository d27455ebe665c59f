"""``dicom://PATH``: frames from one DICOM file or a folder of them, through pydicom 3.

URL forms: ``dicom:///abs/file.dcm``, ``dicom:///abs/folder`` or ``dicom://relative/path``.
A folder is read recursively, every file in name order; files that are not DICOM, hold no image or are
damaged are logged (file name and reason) and skipped. Query:

- ``realtime``: pace at the file's rate (FrameTime, else CineRate, else RecommendedDisplayFrameRate,
  else 30 fps with a warning). Default: on for a single multi-frame file or when ``fps`` is given,
  off (as fast as possible) for single-frame files and folders. A still paced with ``realtime=1`` and
  no ``fps`` is shown for 1 s. Timestamp semantics as in ``edge.sources._common``.
- ``fps=N``: rate for every file; ``loop=1``: start again after the last frame, ``seq`` keeps growing.

Every ``Frame.image`` is BGR uint8 HxWx3, whatever the file stores, so later stages see one layout:

- MONOCHROME1/2: modality LUT (rescale or LUT sequence), then the first VOI LUT, else the first
  window (LINEAR, LINEAR_EXACT or SIGMOID), else the full stored range for data of 8 bits or fewer
  and min-max per frame for deeper data; MONOCHROME1 is inverted for display. The stored values
  (uint8/uint16/int16 as decoded) are kept in ``Frame.raw``.
- PALETTE COLOR: the palette applied (16-bit entries scaled to 8 bits); indices kept in ``Frame.raw``.
- RGB / YBR_*: pydicom converts YBR to RGB; deeper than 8 bits is shifted down, stored kept in ``raw``.

Frames are decoded one at a time (``pydicom.pixels.iter_pixels`` on the path), so a long cine is never
held in memory whole. pydicom is never asked to fetch anything.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder, iter_pixels
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from edge.errors import CorruptInputError, SourceError, UnsupportedSourceError
from edge.frames import Geometry, Modality, UltrasoundRegion
from edge.sources._common import Decoded, PacedSource, check_query, period_ns, positive_number, url_path
from edge.sources.base import SourceInfo
from edge.sources.dicom_render import Renderer, photometric_of, renderer
from edge.sources.registry import SourceURL

log = logging.getLogger(__name__)

DEFAULT_CINE_FPS = 30.0
DEFAULT_STILL_FPS = 1.0
_DEFER_SIZE = "64 KB"  # header reads leave larger values (the pixel data) on disk
_PIXEL_DATA = 0x7FE00010
_MODALITIES: dict[str, Modality] = {"US": "US", "CR": "CR", "DX": "DX"}
_SAFE_META = ("Modality", "Manufacturer", "ManufacturerModelName", "PhotometricInterpretation", "BitsStored")
_QUERY_KEYS = ("realtime", "loop", "fps")

_FrameIterator = Generator[tuple["DicomImage", int, np.ndarray, "np.ndarray | None"], None, None]


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
    ds, truncated = _read_header(path)
    tsyntax, decode_kwargs = _transfer_syntax(ds)
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedSourceError(f"{path}: float pixel data is not supported")
        if truncated:
            raise CorruptInputError(f"{path}: truncated: the file ends inside its encapsulated Pixel Data")
        sop = ds.get("SOPClassUID")
        kind = f" ({UID(str(sop)).name})" if sop else ""
        raise UnsupportedSourceError(f"{path}: no Pixel Data element: not an image{kind}")
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


def _decode_frames(image: DicomImage, start: int) -> Iterator[np.ndarray]:
    """Frames ``start``.. of ``image``, decoded one at a time from the file.

    pydicom 3.0's ``iter_pixels`` over several frames of *native* YBR_FULL_422 data mis-steps after
    the first frame (it switches the runner to YBR_FULL and reads 3 bytes a pixel), while a single
    index decodes right; such files get one call per frame.
    """
    if image.frame_by_frame:
        for index in range(start, image.n_frames):
            (arr,) = iter_pixels(image.decode_from, indices=[index], **image.decode_kwargs)  # closes the file
            yield arr
    else:
        yield from iter_pixels(image.decode_from, indices=range(start, image.n_frames), **image.decode_kwargs)


# -- the source ---------------------------------------------------------------------------------------------
class DicomSource(PacedSource):
    """One DICOM file (single- or multi-frame) or a folder of them, replayed as a frame source."""

    _MAX_CONSECUTIVE_FAILURES = 3

    def __init__(self, url: SourceURL) -> None:
        super().__init__(url)
        check_query(url, _QUERY_KEYS)
        self.path = url_path(url, "dicom:///path/to/file_or_folder")
        self._realtime_param: bool | None = url.flag("realtime", True) if "realtime" in url.query else None
        self._loop = url.flag("loop", False)
        self._fps_param = positive_number(url, "fps")
        self._realtime = False
        self._images: list[DicomImage] = []
        self._total_frames = 0
        self._skipped: list[str] = []
        self._frames: _FrameIterator | None = None
        self._pass_frames = 0
        self._last_error = ""
        self._size: tuple[int, int] | None = None
        self._warned_rate: set[Path] = set()

    # -- opening ------------------------------------------------------------------------------------
    def _open_input(self) -> None:
        path = self.path
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder")
        self._skipped = []
        self._images = self._probe_folder(path) if path.is_dir() else [probe(path)]
        self._total_frames = sum(image.n_frames for image in self._images)
        single_cine = not path.is_dir() and self._images[0].n_frames > 1
        if self._realtime_param is not None:
            self._realtime = self._realtime_param
        else:
            self._realtime = self._fps_param is not None or single_cine
        self._frames = self._iter_frames()
        self._pass_frames = 0
        self._last_error = ""

    def _probe_folder(self, root: Path) -> list[DicomImage]:
        candidates = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
        files = sorted(
            (p for p in candidates if p.name != "DICOMDIR"), key=lambda p: p.relative_to(root).as_posix()
        )
        if not files:
            raise SourceError(f"{root}: folder holds no files")
        images: list[DicomImage] = []
        for file in files:
            try:
                images.append(probe(file))
            except SourceError as exc:
                log.warning("skipping %s", exc)
                self._skipped.append(str(exc))
        if not images:
            raise UnsupportedSourceError(
                f"{root}: none of its {len(files)} files is a readable DICOM image; first: {self._skipped[0]}"
            )
        return images

    def _empty_error(self) -> SourceError:
        reason = f": {self._last_error}" if self._last_error else ""
        return CorruptInputError(f"{self.path}: no frame could be decoded{reason}")

    def _close_input(self) -> None:
        if self._frames is not None:
            self._frames.close()  # closes the file iter_pixels holds open
            self._frames = None

    # -- decoding -----------------------------------------------------------------------------------
    def _iter_frames(self) -> _FrameIterator:
        """One pass over every frame of every file; a frame that fails to decode is logged and skipped."""
        for image in self._images:
            start, failures = 0, 0
            while start < image.n_frames:
                index = start
                try:
                    for arr in _decode_frames(image, start):
                        bgr, raw = image.render(arr)
                        failures = 0
                        yield image, index, bgr, raw
                        index += 1
                    break
                except Exception as exc:  # any decoder or plugin failure: log, skip the frame, go on
                    self._last_error = f"frame {index}: {type(exc).__name__}: {exc}"
                    log.warning("%s: frame %d cannot be decoded (%s); skipping it", image.path, index, exc)
                    failures += 1
                    if failures >= self._MAX_CONSECUTIVE_FAILURES:
                        log.warning("%s: %d frames in a row failed; skipping the rest", image.path, failures)
                        break
                    start = index + 1

    def _decode_next(self) -> Decoded | None:
        assert self._frames is not None
        item = next(self._frames, None)
        if item is None:
            if not self._loop or self._pass_frames == 0:
                return None
            self._frames = self._iter_frames()
            self._pass_frames = 0
            item = next(self._frames, None)
            if item is None:
                return None
        image, index, bgr, raw = item
        self._pass_frames += 1
        if self._size is None:
            self._size = (bgr.shape[1], bgr.shape[0])
        return Decoded(
            image=bgr,
            raw=raw,
            period_ns=self._period(image),
            t_decoded_ns=time.monotonic_ns(),
            source_id=self.path.name,
            modality=image.modality,
            geometry=image.geometry,
            meta={**image.meta, "frame_index": index},
        )

    def _period(self, image: DicomImage) -> int | None:
        if not self._realtime:
            return None
        fps = self._fps_param or image.fps
        if fps is None and image.n_frames > 1:
            fps = DEFAULT_CINE_FPS
            if image.path not in self._warned_rate:
                self._warned_rate.add(image.path)
                log.warning("%s: no frame rate in the file; replaying at %g fps", image.path, fps)
        return period_ns(fps or DEFAULT_STILL_FPS)

    # -- description --------------------------------------------------------------------------------
    @property
    def info(self) -> SourceInfo:
        width, height = self._size if self._size is not None else (None, None)
        total = self._total_frames or None
        first_fps = self._images[0].fps if self._images else None
        return SourceInfo(
            url=self._url.raw,
            kind="dicom",
            fps=self._fps_param or first_fps,
            frame_count=None if self._loop else total,
            width=width,
            height=height,
            realtime=self._realtime,
            extra={
                "path": str(self.path),
                "files": len(self._images),
                "skipped_files": len(self._skipped),
                "loop": self._loop,
                "late_frames": self.late_frames,
            },
        )
