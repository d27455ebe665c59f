"""``uvc://INDEX`` or ``uvc:///dev/videoN``: a live USB video-class device through OpenCV.

Query: ``width``, ``height``, ``fps`` and ``fourcc`` (e.g. MJPG) are requested from the device with
``CAP_PROP_*`` (the device may pick something else; ``info`` reports what it delivers);
``backend=v4l2|any|gstreamer|ffmpeg|dshow|msmf|avfoundation`` (default v4l2 on Linux when OpenCV
has it, any elsewhere);
``retry_s`` (default 2): how long reads may keep failing before the device is declared lost;
``modality`` (default US). ``realtime`` and ``loop`` are accepted and ignored: a device is always live.

Frames are BGR uint8 HxWx3 stamped with ``time.monotonic_ns()`` right after the read returns.
``frame_count`` is None and ``eof`` stays False: a live device has no end.

Failure handling: a failed read is retried every 50 ms; ``read(timeout)`` returns None when its
timeout passes first (the failure is remembered), and once reads have failed for ``retry_s`` in a
row it raises SourceError, saying whether the device node vanished (unplugged) or is still there.
When OpenCV cannot open a device (it gives no reason), the source finds one: not a device node, not
a V4L2 device, a device with no capture (a camera's metadata node), held by another program (named,
with its pid), or the node gone. ``cv2.VideoCapture.read`` itself blocks until the device delivers or its
backend times out (10 s for V4L2), so ``timeout`` is honoured between reads, not inside one.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import SourceError
from edge.frames import Frame, Modality
from edge.sources._common import SourceBase, check_query, modality_param, positive_number, to_bgr
from edge.sources.base import SourceInfo
from edge.sources.registry import SourceURL

log = logging.getLogger(__name__)

DEFAULT_RETRY_S = 2.0
RETRY_INTERVAL_S = 0.05
BACKENDS: dict[str, int] = {
    "any": cv2.CAP_ANY,
    "v4l2": cv2.CAP_V4L2,
    "gstreamer": cv2.CAP_GSTREAMER,
    "ffmpeg": cv2.CAP_FFMPEG,
    "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF,
    "avfoundation": cv2.CAP_AVFOUNDATION,
}
# realtime and loop mean nothing for a live device; accepted so one URL rewrite suits every scheme
_QUERY_KEYS = ("width", "height", "fps", "fourcc", "backend", "retry_s", "modality", "realtime", "loop")
_HINT = "check `ls -l /dev/video*`, that the probe is plugged in, and that this user is in group video"

# Anything shaped like cv2.VideoCapture(target, api): tests pass a scripted fake.
CaptureFactory = Callable[[Any, int], Any]

# VIDIOC_QUERYCAP = _IOR('V', 0, struct v4l2_capability): 104 bytes, driver[16] card[32] bus[32]
# version capabilities device_caps reserved[3]; the capture bits of V4L2_CAP_*.
_VIDIOC_QUERYCAP = 0x80685600
_CAP_CAPTURE = 0x00000001 | 0x00001000  # VIDEO_CAPTURE | VIDEO_CAPTURE_MPLANE
_CAP_DEVICE_CAPS = 0x80000000


def _on_linux() -> bool:
    return sys.platform.startswith("linux")


def default_backend() -> str:
    """V4L2 on Linux when this OpenCV build has it, else whatever OpenCV picks."""
    if _on_linux() and cv2.videoio_registry.hasBackend(cv2.CAP_V4L2):
        return "v4l2"
    return "any"


class UvcSource(SourceBase):
    """A USB video-class device (a probe's HDMI/USB grabber, a webcam) as a live frame source."""

    def __init__(self, url: SourceURL, capture_factory: CaptureFactory | None = None) -> None:
        check_query(url, _QUERY_KEYS)
        url.flag("realtime", True), url.flag("loop", False)  # validated, then ignored
        self._url = url
        self.target: int | str = self._parse_target(url)
        self.device = f"/dev/video{self.target}" if isinstance(self.target, int) else self.target
        width, height = positive_number(url, "width"), positive_number(url, "height")
        self._request_size = (int(width) if width else None, int(height) if height else None)
        self._request_fps = positive_number(url, "fps")
        self._fourcc = url.query.get("fourcc")
        if self._fourcc is not None and len(self._fourcc) != 4:
            raise SourceError(f"{url.raw}: fourcc={self._fourcc!r} must be four characters, e.g. MJPG")
        self._backend = url.query.get("backend", default_backend()).lower()
        if self._backend not in BACKENDS:
            raise SourceError(f"{url.raw}: backend={self._backend!r}; known: {', '.join(sorted(BACKENDS))}")
        self._retry_s = positive_number(url, "retry_s") or DEFAULT_RETRY_S
        self._modality: Modality = modality_param(url, "US")
        self._factory: CaptureFactory = capture_factory or cv2.VideoCapture
        self._cap: Any = None
        self._seq = 0
        self._fail_since: float | None = None
        self._read_failures = 0
        self._size: tuple[int, int] | None = None
        self._fps: float | None = None
        self._stop = threading.Event()

    @staticmethod
    def _parse_target(url: SourceURL) -> int | str:
        if url.netloc and not url.path and url.netloc.isdigit():
            return int(url.netloc)
        if url.path and not url.netloc:
            return url.path
        raise SourceError(f"{url.raw}: expected uvc://INDEX (e.g. uvc://0) or uvc:///dev/videoN")

    # -- Source protocol ----------------------------------------------------------------------------
    @property
    def info(self) -> SourceInfo:
        width, height = self._size if self._size is not None else self._request_size
        return SourceInfo(
            url=self._url.raw,
            kind="uvc",
            fps=self._fps or self._request_fps,
            frame_count=None,
            width=width,
            height=height,
            realtime=True,
            extra={"device": self.device, "backend": self._backend, "read_failures": self._read_failures},
        )

    @property
    def eof(self) -> bool:
        return False

    def open(self) -> None:
        if self._cap is not None:
            return
        self._check_device()
        try:
            cap = self._factory(self.target, BACKENDS[self._backend])
        except cv2.error as exc:
            raise SourceError(f"{self.device}: cannot open the video device: {exc}; {_HINT}") from exc
        if not cap.isOpened():
            cap.release()
            why = open_failure(Path(self.device)) if _on_linux() else None
            raise SourceError(
                f"{self.device}: cannot open the video device "
                f"({why or 'busy in another program, not a capture device, or no permission'}); {_HINT}"
            )
        self._configure(cap)
        self._cap = cap
        self._stop.clear()
        self._fail_since = None

    def _check_device(self) -> None:
        if isinstance(self.target, str):
            path = Path(self.target)
            if not path.exists():
                raise SourceError(f"{self.target}: no such video device; {_HINT}")
            if not os.access(path, os.R_OK):
                raise SourceError(
                    f"{self.target}: permission denied; add this user to group video "
                    "(`sudo usermod -aG video $USER`, then log in again)"
                )
        elif _on_linux() and self._backend in ("v4l2", "any") and not Path(self.device).exists():
            raise SourceError(f"{self.device}: no such video device (uvc://{self.target}); {_HINT}")

    def _configure(self, cap: Any) -> None:
        if self._fourcc is not None:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self._fourcc))
        width, height = self._request_size
        if width is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if self._request_fps is not None:
            cap.set(cv2.CAP_PROP_FPS, self._request_fps)
        got_w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        got_h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        got_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._size = (got_w, got_h) if got_w > 0 and got_h > 0 else None
        self._fps = got_fps if 0 < got_fps <= 1000 else None
        if (width and got_w and width != got_w) or (height and got_h and height != got_h):
            log.warning("%s: asked for %sx%s, got %dx%d", self.device, width, height, got_w, got_h)
        if self._request_fps and self._fps and abs(self._request_fps - self._fps) > 0.5:
            log.warning("%s: asked for %g fps, got %g", self.device, self._request_fps, self._fps)

    def read(self, timeout: float | None = None) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"{self._url.raw}: read() on a source that is not open")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            image = self._read_once()
            if image is not None:
                return self._frame(image)
            now = time.monotonic()
            if self._fail_since is None:
                self._fail_since = now
                log.warning("%s: read failed; retrying for up to %g s", self.device, self._retry_s)
            if now - self._fail_since >= self._retry_s:
                gone = _on_linux() and not Path(self.device).exists()
                cause = "the device node is gone: unplugged" if gone else "the device was unplugged or failed"
                raise SourceError(
                    f"{self.device}: no frame for {self._retry_s:g} s ({self._read_failures} failed reads); "
                    f"{cause}; {_HINT}"
                )
            pause = RETRY_INTERVAL_S if deadline is None else min(RETRY_INTERVAL_S, deadline - now)
            if pause <= 0 or self._stop.wait(pause):
                return None  # timeout (the failure is remembered) or closed

    def _read_once(self) -> np.ndarray | None:
        try:
            ok, image = self._cap.read()
        except cv2.error as exc:
            log.debug("%s: read raised %s", self.device, exc)
            ok, image = False, None
        if ok and image is not None:
            try:
                return to_bgr(image)
            except ValueError as exc:
                log.warning("%s: unusable frame (%s)", self.device, exc)
        self._read_failures += 1
        return None

    def _frame(self, image: np.ndarray) -> Frame:
        t_ns = time.monotonic_ns()
        if self._fail_since is not None:
            log.info("%s: reads recovered after %.2f s", self.device, time.monotonic() - self._fail_since)
            self._fail_since = None
        self._size = (image.shape[1], image.shape[0])
        frame = Frame(
            image=image,
            seq=self._seq,
            t_acquired_ns=t_ns,
            source_id=Path(self.device).name,
            modality=self._modality,
            meta={"device": self.device},
        )
        self._seq += 1
        return frame

    def close(self) -> None:
        self._stop.set()
        if self._cap is not None:
            cap, self._cap = self._cap, None
            cap.release()


# -- why a device does not open ------------------------------------------------------------------------------
def open_failure(path: Path) -> str | None:
    """The cause, as far as the device tells it, when OpenCV could not open ``path``; None if none found."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "the device node is gone: unplugged"
    except OSError as exc:
        return f"cannot look it up: {exc.strerror or exc}"
    if not stat.S_ISCHR(st.st_mode):
        return "not a device node: OpenCV could not read it as a video file either"
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return _busy(path) or "busy: another program has it"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if exc.errno in (errno.ENODEV, errno.ENXIO, errno.ENOENT):
            return "the device is gone: unplugged"
        return f"cannot open it: {exc.strerror or exc}"
    try:
        buf = bytearray(104)
        try:
            fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buf)
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EINVAL):
                return "not a V4L2 video device"
            return f"the device does not answer: {exc.strerror or exc}"
    finally:
        os.close(fd)
    card = bytes(buf[16:48]).split(b"\0", 1)[0].decode(errors="replace")
    caps, device_caps = struct.unpack_from("<II", buf, 84)
    if not (device_caps if caps & _CAP_DEVICE_CAPS else caps) & _CAP_CAPTURE:
        return (
            f"{card or 'this node'} does not capture video (a metadata or output node; "
            "try the camera's other /dev/video node)"
        )
    return _busy(path)


def _busy(path: Path) -> str | None:
    """ "busy: held by NAME (pid N)" for other processes with ``path`` open, as far as /proc lets us see."""
    holders = holders_of(path)
    if not holders:
        return None
    named = ", ".join(f"{name} (pid {pid})" for pid, name in holders[:3])
    more = f" and {len(holders) - 3} more" if len(holders) > 3 else ""
    return f"busy: held by {named}{more}"


def holders_of(path: Path) -> list[tuple[int, str]]:
    """(pid, command name) of the other processes that have ``path`` open; those this user may not
    inspect are not seen (root sees all)."""
    try:
        target = path.resolve()
    except OSError:
        return []
    found: list[tuple[int, str]] = []
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:
            continue  # gone, or not ours to look at
        if str(target) in links:
            try:
                name = (proc / "comm").read_text().strip()
            except OSError:
                name = "?"
            found.append((int(proc.name), name))
    return sorted(found)
