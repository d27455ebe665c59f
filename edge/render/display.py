"""Display sinks: where composed overlay frames go (a window, a video file, snapshots, nowhere).

API (what the pipeline and the CLI use)::

    class Sink(Protocol):
        name: str
        def open(self, width: int, height: int, fps: float | None) -> None
        def show(self, image: np.ndarray, frame_seq: int) -> None   # BGR uint8 HxWx3 (HxW accepted)
        def wants_stop(self) -> bool                                  # window closed, q or Esc pressed
        def close(self) -> None                                       # safe to call twice

    WindowSink(title="scanner edge")
    VideoFileSink(path, fourcc="mp4v", *, default_fps=30.0)     # edge.render.video; .ts survives SIGKILL
    SnapshotSink(directory, every_s, *, clock=time.monotonic)   # + snapshot(image, seq=None) -> Path
    NullSink()
    display_available() -> tuple[bool, str]                     # a test window in a child process
    build_sinks(spec, *, headless=False, video_path=None, snapshot_dir=None, snapshot_every_s=10.0,
                title="scanner edge", fourcc="mp4v", display=None) -> list[Sink]

``spec`` names sinks: "window", "video", "snapshots" ("snapshot" also accepted), "null" (a list,
or one comma-separated string); each sink's ``name`` is that word. A wanted window with no
display (or ``headless``) falls back to the video file, with a WARNING that says so and where
the file goes.

Threading: the pipeline calls every sink from one display thread, the one that opened it. HighGUI
windows must be: ``WindowSink`` raises DisplayError if used from another thread.
Errors: sinks raise ``DisplayError`` (an EdgeError) naming the path or window at fault.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.render.sink import DisplayError, Sink, to_bgr
from edge.render.video import VideoFileSink, recording_suffix

__all__ = [
    "SINK_NAMES", "DisplayError", "NullSink", "Sink", "SnapshotSink", "VideoFileSink", "WindowSink",
    "build_sinks", "display_available", "probe_display", "recording_suffix", "to_bgr",
]  # fmt: skip

log = logging.getLogger(__name__)

SINK_NAMES = ("window", "video", "snapshots", "null")
_ALIASES = {"snapshot": "snapshots"}


Probe = Callable[[Mapping[str, str]], tuple[bool, str]]
_PROBE = "import cv2; cv2.namedWindow('scanner-edge display check'); cv2.destroyAllWindows()"
_probed: dict[tuple[str | None, str | None], tuple[bool, str]] = {}


def probe_display(environ: Mapping[str, str], timeout_s: float = 20.0) -> tuple[bool, str]:
    """Open and close a window in a child process: OpenCV's Qt backend aborts the process that
    cannot reach the display DISPLAY names (no server, no permission), so only a child may try.
    Cached per DISPLAY and WAYLAND_DISPLAY: it costs an interpreter start (about half a second)."""
    key = (environ.get("DISPLAY"), environ.get("WAYLAND_DISPLAY"))
    if key in _probed:
        return _probed[key]
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE], env=dict(environ), capture_output=True, text=True,
            timeout=timeout_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        result = (False, f"a test window did not open within {timeout_s:g} s")
    except OSError as exc:
        result = (False, f"cannot start the display check: {exc}")
    else:
        if out.returncode == 0:
            result = (True, "a test window opened")
        else:
            lines = [line.strip() for line in out.stderr.splitlines() if line.strip()]
            how = f"exit {out.returncode}" if out.returncode > 0 else f"signal {-out.returncode}"
            result = (False, f"{lines[0] if lines else 'the window toolkit failed'} (test window: {how})")
    _probed[key] = result
    return result


def display_available(
    *,
    build_info: str | None = None,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    probe: Probe = probe_display,
) -> tuple[bool, str]:
    """Whether a HighGUI window can be opened here, and why (not).

    Needs an OpenCV build with a GUI backend (``GUI:`` in the build information is not NONE, so
    not opencv-python-headless) and, on Linux, DISPLAY or WAYLAND_DISPLAY set and answering:
    without one, Qt aborts the whole process instead of raising, so ``probe`` opens a test window
    in a child process (``probe_display``) before any window is made here.
    """
    info = cv2.getBuildInformation() if build_info is None else build_info
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    match = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    gui = match.group(1) if match else "NONE"
    if gui.upper() == "NONE":
        return False, "OpenCV built without a GUI backend (GUI: NONE; opencv-python-headless?)"
    if not plat.startswith("linux"):
        return True, f"GUI {gui}"
    if env.get("DISPLAY"):
        named = f"DISPLAY={env['DISPLAY']}"
    elif env.get("WAYLAND_DISPLAY"):
        named = f"WAYLAND_DISPLAY={env['WAYLAND_DISPLAY']}"
    else:
        return False, "DISPLAY unset"
    ok, why = probe(env)
    return (True, f"GUI {gui}, {named}") if ok else (False, f"{named}: {why}")


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


class SnapshotSink:
    """Saves ``snapshot_<seq>.png`` at most once every ``every_s`` seconds (0: every frame).

    ``clock`` is a monotonic seconds clock, injectable so tests need not sleep. Expendable: on a
    full disk the runtime stops it.
    """

    expendable = True

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
            ok, png = cv2.imencode(".png", image)
        except cv2.error as exc:
            raise DisplayError(f"cannot encode snapshot {path}: {exc}") from exc
        if not ok:
            raise DisplayError(f"cannot encode snapshot {path}")
        try:  # written here, not by imwrite, whose False hides the errno (ENOSPC, EFBIG)
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png.tobytes())
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)  # no torn PNG left behind
            raise DisplayError(f"cannot write snapshot {path}: {exc.strerror or exc}") from exc
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
    display: tuple[bool, str] | None = None,
) -> list[Sink]:
    """Make the sinks ``spec`` names (not yet opened), in order, without duplicates.

    A wanted "window" becomes a WindowSink only when not ``headless`` and the display is there
    (``display``: what ``display_available()`` said, when the caller asked it already); otherwise
    the overlay goes to ``video_path`` instead, with a WARNING saying so. "video" needs
    ``video_path`` and "snapshots" needs ``snapshot_dir`` (ConfigError otherwise).
    """
    names = _names(spec)
    sinks: list[Sink] = []
    if "window" in names:
        if headless:
            ok, reason = False, "headless mode"
        else:
            ok, reason = display if display is not None else display_available()
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
