"""``video://PATH``: replay a clip or a still image through OpenCV, paced like a live probe.

URL forms: ``video:///abs/clip.mp4`` or ``video://relative/clip.mp4`` (netloc and path joined).
Query: ``realtime=1`` (native rate, see ``_common`` for the timestamp semantics), ``realtime=0`` (as
fast as possible), ``loop=1`` (rewind at the end forever; ``seq`` keeps growing), ``fps=N`` (override
the container's rate, at most 1000), ``modality=US|DX|CR|OT`` (default US), ``threads=N`` decoder
threads, 0 to 32 (default 1: the pipeline's stages already use the cores, and FFmpeg's frame threads
cost CPU and hold frames back; 0 lets FFmpeg choose).

``realtime`` defaults to on for a clip. For a still it defaults to on only with ``loop=1``, as for
``dicom://`` stills: a looped still is shown ``fps`` times a second (default ``DEFAULT_STILL_FPS``,
1), not as fast as the machine can repeat it; a single still is handed over at once, so the runtime
analyses it like a recording (every frame with its own result).

Frames are BGR uint8 HxWx3; a 16-bit still is scaled to uint8 by min-max with the stored values
kept in ``Frame.raw``. ``source_id`` is the file name; ``meta`` is ``{"file", "frame_index",
"loop_pass", "still", "content_id"}`` (``_common``: a repeat has the same ``content_id``).
"""

from __future__ import annotations

import logging
import math
import stat
import time
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CorruptInputError, SourceError, UnsupportedSourceError
from edge.frames import Modality
from edge.sources._common import (
    DEFAULT_STILL_FPS,
    MAX_FPS,
    Decoded,
    PacedSource,
    check_query,
    check_readable,
    file_identity,
    modality_param,
    period_ns,
    positive_number,
    to_bgr,
    url_path,
    whole_number,
)
from edge.sources.base import SourceInfo
from edge.sources.registry import SourceURL

log = logging.getLogger(__name__)

CLIP_EXTENSIONS = frozenset({".mp4", ".mov", ".mpeg", ".mpg", ".avi"})
STILL_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
DEFAULT_FPS = 30.0
MAX_CONTAINER_FPS = 240.0
# More decoder threads than any edge box has cores buys nothing, and FFmpeg spends seconds starting
# a huge count (threads=1000000: 25 s per open, then a failure OpenCV reports as a corrupt file).
MAX_THREADS = 32
_QUERY_KEYS = ("realtime", "loop", "fps", "modality", "threads")


class VideoSource(PacedSource):
    """A video clip or still image file replayed as a frame source."""

    def __init__(self, url: SourceURL) -> None:
        super().__init__(url)
        check_query(url, _QUERY_KEYS)
        self.path = url_path(url, "video:///path/to/clip.mp4")
        self._is_still = self.path.suffix.lower() in STILL_EXTENSIONS
        self._loop = url.flag("loop", False)
        self._realtime = url.flag("realtime", not self._is_still or self._loop)
        self._fps_override = positive_number(url, "fps", MAX_FPS)
        self._modality: Modality = modality_param(url, "US")
        self._threads = whole_number(url, "threads", 1, 0, MAX_THREADS, "0 lets FFmpeg choose")
        self._identity = ""
        self._cap: cv2.VideoCapture | None = None
        self._still: np.ndarray | None = None
        self._still_raw: np.ndarray | None = None
        self._fps: float | None = None
        self._container_count: int | None = None
        self._index = 0  # frame index within the current pass
        self._passes = 0
        self._size: tuple[int, int] | None = None

    # -- opening ------------------------------------------------------------------------------------
    def _open_input(self) -> None:
        path = self.path
        if stat.S_ISDIR(check_readable(path, folders=True).st_mode):
            raise UnsupportedSourceError(
                f"{path}: is a directory; video:// replays one file (use dicom:// for a folder of images)"
            )
        ext = path.suffix.lower()
        if ext not in CLIP_EXTENSIONS | STILL_EXTENSIONS:
            known = ", ".join(sorted(CLIP_EXTENSIONS | STILL_EXTENSIONS))
            raise UnsupportedSourceError(f"{path}: unsupported file type {ext or '(none)'!r}; known: {known}")
        self._index = 0
        self._passes = 0
        self._identity = file_identity(path)
        if ext in STILL_EXTENSIONS:
            self._open_still(path)
        else:
            self._open_clip(path)

    def _open_still(self, path: Path) -> None:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.size == 0:
            raise CorruptInputError(f"{path}: OpenCV cannot decode this image (corrupt or truncated file?)")
        raw: np.ndarray | None = None
        if image.dtype == np.uint16:
            raw = image
            lo, hi = int(image.min()), int(image.max())
            scale = 255.0 / (hi - lo) if hi > lo else 0.0
            image = np.rint((image.astype(np.float32) - lo) * scale).astype(np.uint8)
        elif image.dtype != np.uint8:
            raise UnsupportedSourceError(f"{path}: unsupported pixel type {image.dtype}")
        bgr = to_bgr(image)
        bgr.flags.writeable = False  # the same array is shared by every repeat of the still
        self._still, self._still_raw = bgr, raw
        self._fps = self._fps_override or DEFAULT_STILL_FPS
        self._container_count = 1
        self._size = (bgr.shape[1], bgr.shape[0])

    def _open_clip(self, path: Path) -> None:
        self._cap = self._new_capture(path, self._threads)
        container_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if self._fps_override is not None:
            self._fps = self._fps_override
        elif math.isfinite(container_fps) and 0 < container_fps <= MAX_CONTAINER_FPS:
            self._fps = container_fps
        else:
            log.warning(
                "%s: container frame rate %r is missing or implausible; replaying at %g fps",
                path,
                container_fps,
                DEFAULT_FPS,
            )
            self._fps = DEFAULT_FPS
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._container_count = count if count > 0 else None

    @staticmethod
    def _new_capture(path: Path, threads: int) -> cv2.VideoCapture:
        # Checked on every open, rewinds too: a clip removed or made unreadable mid-replay is
        # reported as such, not as corrupt (OpenCV says only that it cannot open the file).
        check_readable(path)
        params = [cv2.CAP_PROP_N_THREADS, threads] if threads else []
        try:
            cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, params)
        except cv2.error as exc:
            raise CorruptInputError(f"{path}: OpenCV cannot open this file: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            raise CorruptInputError(
                f"{path}: OpenCV cannot open this file (corrupt, truncated or an unsupported codec)"
            )
        return cap

    def _empty_error(self) -> SourceError:
        return CorruptInputError(f"{self.path}: no frame could be decoded (empty, truncated or corrupt file)")

    def _close_input(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._still = None
        self._still_raw = None

    # -- decoding -----------------------------------------------------------------------------------
    def _decode_next(self) -> Decoded | None:
        if self._still is not None:
            if self._index >= 1:
                if not self._loop:
                    return None
                self._index = 0
                self._passes += 1
            return self._decoded(self._still, self._still_raw)
        image = self._read_clip_frame()
        if image is None:
            if not self._loop or self._index == 0:
                return None  # end of the clip (or a loop pass that decoded nothing: stop, do not spin)
            self._rewind()
            image = self._read_clip_frame()
            if image is None:
                log.warning("%s: no frame after rewinding; ending the replay", self.path)
                return None
        return self._decoded(image, None)

    def _read_clip_frame(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        try:
            ok, image = self._cap.read()
        except cv2.error as exc:
            log.warning("%s: decode error at frame %d (%s); ending the clip", self.path, self._index, exc)
            return None
        if not ok or image is None:
            expected = self._container_count
            if expected is not None and self._index < expected and (self._index > 0 or self._passes > 0):
                log.warning(
                    "%s: clip ended after %d of %d frames (truncated or corrupt)",
                    self.path,
                    self._index,
                    expected,
                )
            return None
        try:
            bgr = to_bgr(image)
        except ValueError as exc:
            log.warning("%s: frame %d unusable (%s); ending the clip", self.path, self._index, exc)
            return None
        if self._size is None:
            self._size = (bgr.shape[1], bgr.shape[0])
        return bgr

    def _rewind(self) -> None:
        # Reopening is slower than seeking by a few ms but exact for every container and codec.
        if self._cap is not None:
            self._cap.release()
        self._cap = self._new_capture(self.path, self._threads)
        self._identity = file_identity(self.path)  # a clip rewritten meanwhile is new content
        self._index = 0
        self._passes += 1

    def _decoded(self, image: np.ndarray, raw: np.ndarray | None) -> Decoded:
        index = self._index
        self._index += 1
        fps = self._fps or DEFAULT_FPS
        return Decoded(
            image=image,
            raw=raw,
            period_ns=period_ns(fps) if self._realtime else None,
            t_decoded_ns=time.monotonic_ns(),
            source_id=self.path.name,
            modality=self._modality,
            meta={
                "file": str(self.path),
                "frame_index": index,
                "loop_pass": self._passes,
                "still": self._still is not None,
                "content_id": f"{self._identity}#{index}",
            },
        )

    # -- description --------------------------------------------------------------------------------
    @property
    def info(self) -> SourceInfo:
        width, height = self._size if self._size is not None else (None, None)
        return SourceInfo(
            url=self._url.raw,
            kind="video",
            fps=self._fps or self._fps_override,
            frame_count=None if self._loop else self._container_count,
            width=width,
            height=height,
            realtime=self._realtime,
            extra={
                "file": str(self.path),
                "still": self._is_still,
                "loop": self._loop,
                "frames_per_pass": self._container_count,
                "late_frames": self.late_frames,
            },
        )
