"""Pieces shared by the built-in sources: a context-manager base, URL query checks, the readability
check of input files, BGR conversion and the realtime pacer that file replays (``video://``,
``dicom://``) use to behave like a live probe.

Pacing semantics (one place, used by every file replay):

- The clock starts at the first ``read()``, not at ``open()``: a pipeline that opens its source and
  starts reading a second later does not receive a burst of "overdue" frames.
- Frame k is released no earlier than ``t_start + sum(period of frames 0..k-1)`` on the monotonic
  clock, and its ``t_acquired_ns`` is exactly that scheduled time, as a live probe would have
  captured it, even when the caller reads late. A reader that falls behind gets every frame (nothing
  is dropped) with growing latency; a frame released more than one period after its scheduled time
  is counted in ``late_frames``.
- ``t_received_ns`` is when ``read()`` hands the frame over (at or after the scheduled time): the
  runtime's own latency is measured from it, so the replay's sleep jitter is not counted as the
  runtime's, while capture-to-screen latency (from ``t_acquired_ns``) still shows a late reader.
- Without pacing (``realtime=0``) ``t_acquired_ns`` is ``time.monotonic_ns()`` when the frame was
  decoded.
- A still (one image) has no rate of its own: looped or paced, it is shown at ``DEFAULT_STILL_FPS``
  unless the URL gives ``fps``. Every frame of a file replay says what it shows in ``meta``:
  ``still`` (a single image), ``loop_pass`` and ``content_id`` (the same for every repeat of the
  same frame of the same unchanged file), so later stages can tell a repeat from a new image.
"""

from __future__ import annotations

import hashlib
import math
import os
import pwd
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import cv2
import numpy as np

from edge.errors import CorruptInputError, SourceError
from edge.frames import Frame, Geometry, Modality
from edge.sources.base import SourceInfo
from edge.sources.registry import SourceURL

MODALITIES: tuple[Modality, ...] = ("US", "DX", "CR", "OT")
DEFAULT_STILL_FPS = 1.0  # a still shown again and again: once a second, like a slow live image
MAX_FPS = 1000.0  # an ``fps`` above this is a typo, not a replay rate
_S = TypeVar("_S", bound="SourceBase")


class SourceBase:
    """Context-manager support for sources: ``with open_source(url) as src: ...`` opens and closes."""

    def open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_query(url: SourceURL, allowed: Iterable[str]) -> None:
    """Reject unknown query keys, so a typo (``?relatime=0``) fails loudly instead of being ignored."""
    allowed_set = set(allowed)
    unknown = sorted(set(url.query) - allowed_set)
    if unknown:
        raise SourceError(
            f"{url.raw}: unknown query parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(allowed_set)) or 'none'}"
        )


def positive_number(url: SourceURL, key: str, maximum: float | None = None) -> float | None:
    """``?key=N`` as a finite number > 0 (and <= ``maximum``), or None when absent."""
    value = url.number(key, None)
    if value is None:
        return None
    if not (math.isfinite(value) and value > 0) or (maximum is not None and value > maximum):
        upper = f" and <= {maximum:g}" if maximum is not None else ""
        raise SourceError(f"{url.raw}: query parameter {key}={url.query[key]!r} must be a number > 0{upper}")
    return value


def whole_number(url: SourceURL, key: str, default: int, low: int, high: int, meaning: str = "") -> int:
    """``?key=N`` as a whole number within ``low..high`` (checked before any I/O: a value out of
    range must not reach a decoder that spends seconds on it and then fails obscurely)."""
    value = url.number(key, float(default))
    if value is None or not math.isfinite(value) or value != int(value) or not low <= value <= high:
        note = f" ({meaning})" if meaning else ""
        raise SourceError(
            f"{url.raw}: query parameter {key}={url.query.get(key)!r} must be a whole number "
            f"from {low} to {high}{note}"
        )
    return int(value)


def modality_param(url: SourceURL, default: Modality) -> Modality:
    value = url.query.get("modality", default).upper()
    if value not in MODALITIES:
        raise SourceError(f"{url.raw}: modality={value!r} must be one of {', '.join(MODALITIES)}")
    return value  # narrowed to Modality by the membership test


def url_path(url: SourceURL, example: str) -> Path:
    """``scheme:///abs/x`` -> /abs/x; ``scheme://rel/x`` -> rel/x (netloc and path joined)."""
    text = url.netloc + url.path if url.netloc else url.path
    if not text:
        raise SourceError(f"{url.raw}: no file path; expected {example}")
    return Path(text).expanduser()


def _who(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _denied(path: Path, st: os.stat_result | None, doing: str) -> SourceError:
    if st is None:  # the file cannot even be looked at: a folder above it is closed to us
        return SourceError(
            f"{path}: permission denied ({doing}; a folder above it is not searchable by "
            f"{_who(os.geteuid())})"
        )
    return SourceError(
        f"{path}: permission denied ({doing}: mode {stat.filemode(st.st_mode)}, owner {_who(st.st_uid)}; "
        f"this process runs as {_who(os.geteuid())})"
    )


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def unreadable(path: Path, *, folders: bool = False) -> SourceError | None:
    """Why ``path`` cannot be read as an input file (or, with ``folders``, listed as a folder), or
    None when it can.

    Asked before a decoder sees the path: OpenCV and pydicom report a file they cannot open as
    corrupt or unparseable, which sends the user looking for damage when the cause is a missing
    file, a permission, a dangling link or a pipe. The file is really opened (``os.access`` says
    yes to root and ignores ACLs), never a FIFO or device (opening a FIFO blocks).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            target = os.readlink(path)
            return SourceError(f"{path}: dangling symbolic link (to {target}, which does not exist)")
        return SourceError(f"{path}: no such file{' or folder' if folders else ''}")
    except PermissionError:
        return _denied(path, None, "cannot look it up")
    except OSError as exc:
        return SourceError(f"{path}: cannot look it up: {exc.strerror or exc}")
    if stat.S_ISDIR(st.st_mode):
        if not folders:
            return None  # the caller says what a folder means for its scheme
        try:
            with os.scandir(path) as entries:
                next(entries, None)
        except PermissionError:
            return _denied(path, st, "cannot list the folder")
        except OSError as exc:
            return SourceError(f"{path}: cannot list the folder: {exc.strerror or exc}")
        return None
    for test, kind in _KINDS:
        if test(st.st_mode):
            return SourceError(f"{path}: not a regular file but {kind}; give a file")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except PermissionError:
        return _denied(path, st, "cannot open it for reading")
    except OSError as exc:
        return SourceError(f"{path}: cannot read: {exc.strerror or exc}")
    if st.st_size == 0:
        return CorruptInputError(f"{path}: empty file (0 bytes)")
    return None


def check_readable(path: Path, *, folders: bool = False) -> os.stat_result:
    """Raise ``unreadable(path)``'s SourceError, if any; else the path's stat."""
    problem = unreadable(path, folders=folders)
    if problem is not None:
        raise problem
    return path.stat()


def file_identity(path: Path) -> str:
    """A short id of this file as it is now (path, size, modification time): the base of the
    ``content_id`` of its frames, the same on every pass of a loop and changed when the file is."""
    try:
        st = path.stat()
        key = f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
    except OSError:
        key = str(path)
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def period_ns(fps: float) -> int:
    """Frame period in integer nanoseconds; scheduled times are exact multiples of it."""
    return max(1, round(1e9 / fps))


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Gray (HxW or HxWx1), BGR or BGRA uint8 -> BGR uint8 HxWx3; BGR input is returned as is (no copy)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cast(np.ndarray, cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cast(np.ndarray, cv2.cvtColor(image, cv2.COLOR_BGRA2BGR))
    raise ValueError(f"unexpected image shape {image.shape}")


@dataclass(slots=True)
class Decoded:
    """A decoded frame waiting to be released by ``PacedSource.read``."""

    image: np.ndarray
    period_ns: int | None  # time until the next frame when paced; None: as fast as possible
    t_decoded_ns: int
    source_id: str
    modality: Modality
    raw: np.ndarray | None = None
    geometry: Geometry = field(default_factory=Geometry)
    meta: dict[str, Any] = field(default_factory=dict)


class PacedSource(SourceBase):
    """Template for finite file replays: subclasses decode, this class paces, stamps and counts.

    Subclasses implement ``_open_input`` (I/O, raising SourceError), ``_decode_next`` (the next
    frame of the replay, rewinding itself when looping, None at the end), ``_close_input`` and ``info``.
    ``open()`` decodes the first frame, so an input with no decodable frame fails at open.
    """

    def __init__(self, url: SourceURL) -> None:
        self._url = url
        self._opened = False
        self._eof = False
        self._pending: Decoded | None = None
        self._seq = 0
        self._next_due_ns: int | None = None
        self._late_frames = 0
        self._stop = threading.Event()
        self._last_period_ns: int | None = None  # None until a paced frame was released
        self._decode_ewma_ns = 2_000_000.0

    # -- subclass hooks -------------------------------------------------------------------------
    def _open_input(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _decode_next(self) -> Decoded | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _close_input(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _empty_error(self) -> SourceError:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- Source protocol ------------------------------------------------------------------------
    @property
    def info(self) -> SourceInfo:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def eof(self) -> bool:
        return self._eof

    @property
    def late_frames(self) -> int:
        return self._late_frames

    def open(self) -> None:
        if self._opened:
            return
        self._eof = False
        self._pending = None
        self._seq = 0
        self._next_due_ns = None
        self._late_frames = 0
        self._stop.clear()
        self._open_input()
        try:
            first = self._decode_next()
            if first is None:
                raise self._empty_error()
        except BaseException:
            self._close_input()
            raise
        self._pending = first
        self._opened = True

    def close(self) -> None:
        self._stop.set()  # wakes a reader sleeping until its frame is due
        if self._opened:
            self._opened = False
            self._pending = None
            self._close_input()

    def _wait_to_decode(self, timeout: float | None) -> bool:
        """When paced, sleep until shortly before the next frame is due, then let it be decoded.

        Decoding straight after handing a frame over would compete for the CPU with the models
        working on that very frame; a live probe's next frame does not exist yet either. The lead
        (3x the recent decode time, at least 2 ms, at most half a period) keeps frames on time.
        False when the timeout ran out or the source was closed first.
        """
        if self._last_period_ns is None or self._next_due_ns is None:
            return True
        lead = min(self._last_period_ns // 2, max(2_000_000, int(3 * self._decode_ewma_ns)))
        wait_ns = self._next_due_ns - lead - time.monotonic_ns()
        if wait_ns <= 0:
            return True
        if timeout is not None and wait_ns > timeout * 1e9:
            self._stop.wait(max(0.0, timeout))
            return False
        return not self._stop.wait(wait_ns / 1e9)

    def read(self, timeout: float | None = None) -> Frame | None:
        if not self._opened:
            raise SourceError(f"{self._url.raw}: read() on a source that is not open")
        if self._eof:
            return None
        if self._pending is None:
            if not self._wait_to_decode(timeout):
                return None
            t0 = time.monotonic_ns()
            self._pending = self._decode_next()
            self._decode_ewma_ns += 0.2 * ((time.monotonic_ns() - t0) - self._decode_ewma_ns)
            if self._pending is None:
                self._eof = True
                return None
        item = self._pending
        if item.period_ns is None:
            t_acquired = item.t_decoded_ns
        else:
            now = time.monotonic_ns()
            if self._next_due_ns is None:
                self._next_due_ns = now  # the clock starts at the first read
            due = self._next_due_ns
            wait_ns = due - now
            if wait_ns > 0:
                if timeout is not None and wait_ns > timeout * 1e9:
                    self._stop.wait(max(0.0, timeout))
                    return None  # not due within the timeout; the frame stays pending
                if self._stop.wait(wait_ns / 1e9):
                    return None  # closed while waiting
                now = time.monotonic_ns()
            if now - due > item.period_ns:
                self._late_frames += 1
            t_acquired = due
            self._next_due_ns = due + item.period_ns
            self._last_period_ns = item.period_ns
        self._pending = None
        wall = time.time() - (time.monotonic_ns() - t_acquired) / 1e9
        frame = Frame(
            image=item.image,
            seq=self._seq,
            t_acquired_ns=t_acquired,
            t_received_ns=time.monotonic_ns(),
            source_id=item.source_id,
            modality=item.modality,
            wall_time=wall,
            geometry=item.geometry,
            raw=item.raw,
            meta=item.meta,
        )
        self._seq += 1
        return frame


def read_fresh(source: Any, timeout: float | None, max_age_ns: int) -> tuple[Frame | None, int]:
    """The next frame of ``source``, skipping stale ones: a frame captured more than
    ``max_age_ns`` ago is dropped when a newer one is already waiting. Returns the frame (None
    when none came within ``timeout``) and how many were dropped; ``max_age_ns`` 0 turns it off.

    A live source's buffer (the probe's queue, the link behind it) fills while the box is busy
    elsewhere; handing those frames on one by one would keep the screen behind by the whole
    backlog. Stale frames are let go here, before any stage spends time on them. The newest frame
    is never dropped, however old: a box slower than the budget still shows every frame it can.
    Nor is a still (an X-ray from a console's burst): each is an image of its own, not a moment
    of a stream, and each is analysed.
    """
    frame = source.read(timeout)
    if frame is None or max_age_ns <= 0 or frame.meta.get("still"):
        return frame, 0
    dropped = 0
    while time.monotonic_ns() - frame.t_acquired_ns > max_age_ns and dropped < 256:
        newer = source.read(0.0)  # only what is already waiting
        if newer is None:
            break
        frame = newer
        dropped += 1
        if frame.meta.get("still"):
            break  # a still behind the stale frames: never dropped itself
    return frame, dropped
