"""Display sinks: where composed overlay frames go (a window, a video file, snapshots, nowhere).

API (what the pipeline and the CLI use)::

    class Sink(Protocol):
        name: str
        def open(self, width: int, height: int, fps: float | None) -> None
        def show(self, image: np.ndarray, frame_seq: int) -> None   # BGR uint8 HxWx3 (HxW accepted)
        def wants_stop(self) -> bool                                  # window closed, q or Esc pressed
        def close(self) -> None                                       # safe to call twice

    WindowSink(title="scanner edge")
    VideoFileSink(path, fourcc="mp4v", *, default_fps=30.0)
    SnapshotSink(directory, every_s, *, clock=time.monotonic)   # + snapshot(image, seq=None) -> Path
    NullSink()
    display_available() -> tuple[bool, str]
    build_sinks(spec, *, headless=False, video_path=None, snapshot_dir=None, snapshot_every_s=10.0,
                title="scanner edge", fourcc="mp4v") -> list[Sink]

``spec`` names sinks: "window", "video", "snapshots" ("snapshot" also accepted), "null" (a list,
or one comma-separated string); each sink's ``name`` is that word. A wanted window with no
display (or ``headless``) falls back to the video file, with a WARNING that says so and where
the file goes.

Threading: the pipeline calls every sink from one display thread, the one that opened it. HighGUI
windows must be: ``WindowSink`` raises DisplayError if used from another thread.
Errors: sinks raise ``DisplayError`` (an EdgeError) naming the path or window at fault.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from edge.errors import ConfigError, EdgeError

log = logging.getLogger(__name__)

SINK_NAMES = ("window", "video", "snapshots", "null")
_ALIASES = {"snapshot": "snapshots"}


class DisplayError(EdgeError):
    """A display sink could not open or write (no display, codec missing, disk full)."""


@runtime_checkable
class Sink(Protocol):
    """Anything that takes composed frames. Tests inject any object with these members."""

    name: str

    def open(self, width: int, height: int, fps: float | None) -> None: ...

    def show(self, image: np.ndarray, frame_seq: int) -> None: ...

    def wants_stop(self) -> bool: ...

    def close(self) -> None: ...


def _bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def display_available(
    *, build_info: str | None = None, environ: Mapping[str, str] | None = None, platform: str | None = None
) -> tuple[bool, str]:
    """Whether a HighGUI window can be opened here, and why (not).

    Needs an OpenCV build with a GUI backend (``GUI:`` in the build information is not NONE, so
    not opencv-python-headless) and, on Linux, DISPLAY or WAYLAND_DISPLAY set: without one, Qt
    aborts the whole process instead of raising, so this is checked before any window is made.
    """
    info = cv2.getBuildInformation() if build_info is None else build_info
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    match = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    gui = match.group(1) if match else "NONE"
    if gui.upper() == "NONE":
        return False, "OpenCV built without a GUI backend (GUI: NONE; opencv-python-headless?)"
    if plat.startswith("linux"):
        if env.get("DISPLAY"):
            return True, f"GUI {gui}, DISPLAY={env['DISPLAY']}"
        if env.get("WAYLAND_DISPLAY"):
            return True, f"GUI {gui}, WAYLAND_DISPLAY={env['WAYLAND_DISPLAY']}"
        return False, "DISPLAY unset"
    return True, f"GUI {gui}"


class WindowSink:
    """An OpenCV window. Open, show and close it from one thread (HighGUI is not thread-safe)."""

    def __init__(self, title: str = "scanner edge") -> None:
        self.name = "window"
        self.title = title
        self._thread: int | None = None
        self._stop = False

    def open(self, width: int, height: int, fps: float | None) -> None:
        ok, reason = display_available()
        if not ok:
            raise DisplayError(f"cannot open window {self.title!r}: no display ({reason})")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            cv2.resizeWindow(self.title, width, height)
        except cv2.error as exc:
            raise DisplayError(f"cannot open window {self.title!r}: {exc}") from exc
        self._thread = threading.get_ident()

    def show(self, image: np.ndarray, frame_seq: int) -> None:
        if self._thread != threading.get_ident():
            raise DisplayError(
                f"window {self.title!r} used from a thread that did not open it (or not opened)"
            )
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1)  # also runs the GUI event loop: without it the window never repaints
        if key != -1 and (key & 0xFF) in (ord("q"), ord("Q"), 27):
            self._stop = True
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                self._stop = True  # closed with the window manager's button
        except cv2.error:
            self._stop = True

    def wants_stop(self) -> bool:
        return self._stop

    def close(self) -> None:
        if self._thread is None:
            return
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error as exc:  # already gone: nothing to release
            log.debug("closing window %r: %s", self.title, exc)
        self._thread = None


class VideoFileSink:
    """Writes every frame to a video file; the writer opens on the first frame, at its size.

    Later frames of another size are resized to that size; gray frames are converted to BGR.
    With ``background`` (the runtime's default) encoding runs on a writer thread fed by a small
    bounded queue: colour conversion and encoding cost as much as the model on small CPUs and
    overlap with drawing the next frame; a full queue makes ``show`` wait (never drops a frame).
    """

    def __init__(
        self,
        path: str | Path,
        fourcc: str = "mp4v",
        *,
        default_fps: float = 30.0,
        background: bool = True,
        queue_size: int = 4,
    ) -> None:
        if len(fourcc) != 4:
            raise DisplayError(f"video codec must be a 4-character fourcc, got {fourcc!r} for {path}")
        self.name = "video"
        self.path = Path(path)
        self.fourcc = fourcc
        self.default_fps = default_fps
        self.frames_written = 0
        self._fps: float | None = None
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None  # (width, height) the writer was opened with
        self._queue: queue.Queue[np.ndarray | None] | None = queue.Queue(queue_size) if background else None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def open(self, width: int, height: int, fps: float | None) -> None:
        # fps may be unknown for a live source; the file still needs one.
        self._fps = fps if fps and fps > 0 else self.default_fps
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DisplayError(f"cannot create the folder for video {self.path}: {exc}") from exc

    def _open_writer(self, width: int, height: int) -> cv2.VideoWriter:
        if self._fps is None:
            self.open(width, height, None)
        fps = self._fps or self.default_fps
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*self.fourcc), fps, (width, height))
        if not writer.isOpened():
            raise DisplayError(
                f"cannot write video {self.path} with codec {self.fourcc!r} ({width}x{height}, {fps:g} fps): "
                "OpenCV's VideoWriter did not open (codec not in this build, or path not writable)"
            )
        self._size = (width, height)
        log.info(
            "writing overlay video to %s (%s, %dx%d, %g fps)", self.path, self.fourcc, width, height, fps
        )
        return writer

    def show(self, image: np.ndarray, frame_seq: int) -> None:
        image = _bgr(image)
        h, w = image.shape[:2]
        if self._writer is None:
            self._writer = self._open_writer(w, h)
        if (w, h) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        if self._queue is None:
            self._writer.write(image)
            self.frames_written += 1
            return
        if self._failure is not None:
            raise DisplayError(f"writing video {self.path} failed: {self._failure}") from self._failure
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, name="video-writer", daemon=True)
            self._thread.start()
        self._queue.put(image.copy())  # the caller reuses its buffer for the next frame

    def _write_loop(self) -> None:
        assert self._queue is not None and self._writer is not None
        while (item := self._queue.get()) is not None:
            try:
                self._writer.write(item)
                self.frames_written += 1
            except Exception as exc:  # e.g. disk full: reported on the next show()
                self._failure = exc

    def wants_stop(self) -> bool:
        return False

    def close(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)  # after the frames already queued: all of them get written
            self._thread.join()
            self._thread = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            log.info("wrote %d frames to %s", self.frames_written, self.path)


class SnapshotSink:
    """Saves ``snapshot_<seq>.png`` at most once every ``every_s`` seconds (0: every frame).

    ``clock`` is a monotonic seconds clock, injectable so tests need not sleep.
    """

    def __init__(
        self, directory: str | Path, every_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if every_s < 0:
            raise ValueError(f"every_s must be >= 0, got {every_s}")
        self.name = "snapshots"
        self.directory = Path(directory)
        self.every_s = every_s
        self.saved = 0
        self._clock = clock
        self._last: float | None = None

    def open(self, width: int, height: int, fps: float | None) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DisplayError(f"cannot create snapshot folder {self.directory}: {exc}") from exc

    def show(self, image: np.ndarray, frame_seq: int) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self.every_s:
            return
        self._last = now
        self.snapshot(image, frame_seq)

    def snapshot(self, image: np.ndarray, seq: int | None = None) -> Path:
        """Save one image now (not rate limited); named by ``seq``, or by UTC time without one."""
        if seq is None:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
            path = self.directory / f"snapshot_{stamp}.png"
        else:
            path = self.directory / f"snapshot_{seq}.png"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ok = cv2.imwrite(str(path), image)
        except (OSError, cv2.error) as exc:
            raise DisplayError(f"cannot write snapshot {path}: {exc}") from exc
        if not ok:
            raise DisplayError(f"cannot write snapshot {path} (disk full or not writable?)")
        self.saved += 1
        return path

    def wants_stop(self) -> bool:
        return False

    def close(self) -> None:
        pass


class NullSink:
    """Takes frames and drops them (benchmarks, headless runs that record nothing)."""

    def __init__(self) -> None:
        self.name = "null"
        self.frames = 0

    def open(self, width: int, height: int, fps: float | None) -> None:
        pass

    def show(self, image: np.ndarray, frame_seq: int) -> None:
        self.frames += 1

    def wants_stop(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _names(spec: str | Iterable[str]) -> list[str]:
    raw = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in raw:
        name = item.strip().lower()
        name = _ALIASES.get(name, name)
        if not name:
            continue
        if name not in SINK_NAMES:
            raise ConfigError(f"unknown display sink {item!r}; expected one of {', '.join(SINK_NAMES)}")
        if name not in names:
            names.append(name)
    return names


def build_sinks(
    spec: str | Iterable[str],
    *,
    headless: bool = False,
    video_path: str | Path | None = None,
    snapshot_dir: str | Path | None = None,
    snapshot_every_s: float = 10.0,
    title: str = "scanner edge",
    fourcc: str = "mp4v",
) -> list[Sink]:
    """Make the sinks ``spec`` names (not yet opened), in order, without duplicates.

    A wanted "window" becomes a WindowSink only when not ``headless`` and ``display_available()``;
    otherwise the overlay goes to ``video_path`` instead, with a WARNING saying so. "video" needs
    ``video_path`` and "snapshots" needs ``snapshot_dir`` (ConfigError otherwise).
    """
    names = _names(spec)
    sinks: list[Sink] = []
    if "window" in names:
        ok, reason = (False, "headless mode") if headless else display_available()
        if ok:
            sinks.append(WindowSink(title))
        elif "video" in names:
            log.warning("no display (%s): not opening a window; overlay video goes to %s", reason, video_path)
        elif video_path is not None:
            log.warning(
                "no display (%s): writing overlay video to %s instead of a window", reason, video_path
            )
            sinks.append(VideoFileSink(video_path, fourcc))
        else:
            log.warning(
                "no display (%s) and no video path: the overlay is neither shown nor recorded", reason
            )
    if "video" in names:
        if video_path is None:
            raise ConfigError("display sink 'video' needs a video path (display.video_path)")
        sinks.append(VideoFileSink(video_path, fourcc))
    if "snapshots" in names:
        if snapshot_dir is None:
            raise ConfigError("display sink 'snapshots' needs a snapshot folder (display.snapshot_dir)")
        sinks.append(SnapshotSink(snapshot_dir, snapshot_every_s))
    if "null" in names:
        sinks.append(NullSink())
    return sinks
