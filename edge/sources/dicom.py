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
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
from pydicom.pixels import iter_pixels

from edge.errors import CorruptInputError, SourceError, UnsupportedSourceError
from edge.sources._common import Decoded, PacedSource, check_query, period_ns, positive_number, url_path
from edge.sources.base import SourceInfo
from edge.sources.dicom_file import DicomImage, probe
from edge.sources.registry import SourceURL

log = logging.getLogger(__name__)

DEFAULT_CINE_FPS = 30.0
DEFAULT_STILL_FPS = 1.0
_QUERY_KEYS = ("realtime", "loop", "fps")

_FrameIterator = Generator[tuple["DicomImage", int, np.ndarray, "np.ndarray | None"], None, None]


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
