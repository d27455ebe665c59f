"""``dicom://PATH``: frames from one DICOM file or a folder of them, through pydicom 3.

URL forms: ``dicom:///abs/file.dcm``, ``dicom:///abs/folder`` or ``dicom://relative/path``.
A folder is read recursively, every file in name order; files that are not DICOM, hold no image or are
damaged are logged (file name and reason) and skipped. Query:

- ``realtime``: pace at the file's rate (FrameTime, else CineRate, else RecommendedDisplayFrameRate,
  else 30 fps with a warning). Default: on for a single multi-frame file, when ``fps`` is given or
  with ``loop=1`` (an endless replay stands in for a live probe: repeating the same images as fast
  as possible would flood every later stage with copies), off (as fast as possible) for
  single-frame files and folders read once. A still paced with no ``fps`` is shown for 1 s
  (``DEFAULT_STILL_FPS``). Timestamp semantics as in ``edge.sources._common``.
- ``fps=N``: rate for every file (at most 1000); ``loop=1``: start again after the last frame,
  ``seq`` keeps growing.

``meta`` holds the file's safe attributes (no identity) and ``frame_index``, ``loop_pass``,
``still`` (a single-frame image) and ``content_id`` (the same on every pass of a loop).

A file or folder that cannot be read is reported with its cause (permission, dangling link, not a
regular file) rather than as a malformed header; a folder that vanishes during the replay (a USB
stick pulled) ends it with an error saying so; a file that vanishes is skipped with a warning.

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
import os
import stat
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
from pydicom.pixels import iter_pixels

from edge.errors import CorruptInputError, SourceError, UnsupportedSourceError
from edge.sources._common import (
    DEFAULT_STILL_FPS,
    MAX_FPS,
    Decoded,
    PacedSource,
    check_query,
    check_readable,
    file_identity,
    period_ns,
    positive_number,
    unreadable,
    url_path,
)
from edge.sources.base import SourceInfo
from edge.sources.dicom_file import DicomImage, probe
from edge.sources.registry import SourceURL

log = logging.getLogger(__name__)

DEFAULT_CINE_FPS = 30.0
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
        self._fps_param = positive_number(url, "fps", MAX_FPS)
        self._realtime = False
        self._images: list[DicomImage] = []
        self._total_frames = 0
        self._skipped: list[str] = []
        self._frames: _FrameIterator | None = None
        self._pass_frames = 0
        self._passes = 0
        self._identities: dict[Path, str] = {}
        self._last_error = ""
        self._size: tuple[int, int] | None = None
        self._warned_rate: set[Path] = set()

    # -- opening ------------------------------------------------------------------------------------
    def _open_input(self) -> None:
        path = self.path
        is_dir = stat.S_ISDIR(check_readable(path, folders=True).st_mode)
        self._skipped = []
        self._images = self._probe_folder(path) if is_dir else [probe(path)]
        self._identities = {image.path: file_identity(image.path) for image in self._images}
        self._total_frames = sum(image.n_frames for image in self._images)
        single_cine = not is_dir and self._images[0].n_frames > 1
        if self._realtime_param is not None:
            self._realtime = self._realtime_param
        else:
            self._realtime = self._fps_param is not None or single_cine or self._loop
        self._frames = self._iter_frames()
        self._pass_frames = 0
        self._passes = 0
        self._last_error = ""

    def _probe_folder(self, root: Path) -> list[DicomImage]:
        found = (p for p in self._walk(root) if p.name != "DICOMDIR")
        files = sorted(found, key=lambda p: p.relative_to(root).as_posix())
        if not files:
            unlisted = f" ({len(self._skipped)} subfolder(s) could not be listed)" if self._skipped else ""
            raise SourceError(f"{root}: folder holds no files{unlisted}")
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

    def _walk(self, root: Path) -> Iterator[Path]:
        """Every non-hidden file below ``root``; a subfolder that cannot be listed is logged and
        counted as skipped (``rglob`` would pass over it in silence)."""

        def on_error(exc: OSError) -> None:
            problem = unreadable(Path(exc.filename), folders=True) if exc.filename else None
            reason = str(problem) if problem is not None else f"{exc.filename}: {exc.strerror or exc}"
            log.warning("skipping %s", reason)
            self._skipped.append(reason)

        for folder, _dirs, names in os.walk(root, onerror=on_error):
            for name in names:
                path = Path(folder, name)
                if not name.startswith(".") and (path.is_file() or path.is_symlink()):
                    yield path

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
                    gone = self._gone(image.path)
                    if gone is not None:  # no point trying its other frames
                        self._last_error = str(gone)
                        log.warning("%s; skipping the rest of this file", gone)
                        break
                    self._last_error = f"frame {index}: {type(exc).__name__}: {exc}"
                    log.warning("%s: frame %d cannot be decoded (%s); skipping it", image.path, index, exc)
                    failures += 1
                    if failures >= self._MAX_CONSECUTIVE_FAILURES:
                        log.warning("%s: %d frames in a row failed; skipping the rest", image.path, failures)
                        break
                    start = index + 1

    def _gone(self, path: Path) -> SourceError | None:
        """Why ``path`` cannot be read any more, raising when the whole input vanished; None when
        it still can (the failure was the decoder's)."""
        if not self.path.exists():
            raise SourceError(
                f"{self.path}: vanished during the replay (removed, renamed or unmounted); "
                f"{self._seq} frame(s) were delivered"
            )
        return unreadable(path)

    def _decode_next(self) -> Decoded | None:
        assert self._frames is not None
        item = next(self._frames, None)
        if item is None:
            if not self._loop or self._pass_frames == 0:
                return None
            self._frames = self._iter_frames()
            self._pass_frames = 0
            self._passes += 1
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
            meta={
                **image.meta,
                "frame_index": index,
                "loop_pass": self._passes,
                "still": image.n_frames == 1,
                "content_id": f"{self._identities.get(image.path, '')}#{index}",
            },
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
