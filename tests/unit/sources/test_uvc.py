"""uvc://: URL parsing, the error paths a missing or broken device takes, and the read path.

No camera is used. The read path is exercised two ways: with a scripted capture object injected
through ``capture_factory`` (frames, failures, recovery), and with the real ``cv2.VideoCapture``
opening a video file through ``?backend=any``: that is the same UvcSource code (same factory, same
``read``), only the OpenCV backend differs from a V4L2 device.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.errors import SourceError
from edge.sources import open_source
from edge.sources.registry import parse_source_url
from edge.sources.uvc import UvcSource, holders_of

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="V4L2 device paths are Linux's")


class ScriptedCapture:
    """Stands in for cv2.VideoCapture: ``script`` lists what each read returns (an image or None)."""

    def __init__(self, script: list[np.ndarray | None], opened: bool = True, fps: float = 30.0) -> None:
        self.script = list(script)
        self.opened = opened
        self.props: dict[int, float] = {cv2.CAP_PROP_FRAME_WIDTH: 640, cv2.CAP_PROP_FRAME_HEIGHT: 480}
        self.props[cv2.CAP_PROP_FPS] = fps
        self.set_calls: list[tuple[int, float]] = []
        self.released = 0
        self.reads = 0

    def isOpened(self) -> bool:
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.set_calls.append((prop, value))
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reads += 1
        item = self.script.pop(0) if self.script else None
        return (item is not None, item)

    def release(self) -> None:
        self.released += 1


def uvc(url: str, capture: ScriptedCapture) -> tuple[UvcSource, list[tuple[Any, int]]]:
    calls: list[tuple[Any, int]] = []

    def factory(target: Any, api: int) -> ScriptedCapture:
        calls.append((target, api))
        return capture

    return UvcSource(parse_source_url(url), capture_factory=factory), calls


def bgr(level: int) -> np.ndarray:
    return np.full((48, 64, 3), level, np.uint8)


@pytest.fixture
def fake_device(tmp_path: Path) -> Path:
    """A path that exists, standing in for /dev/videoN when the capture is scripted."""
    path = tmp_path / "video9"
    path.write_bytes(b"")
    return path


# -- parsing ----------------------------------------------------------------------------------------------
def test_index_and_path_urls() -> None:
    by_index = open_source("uvc://2?width=1280&height=720&fps=60&fourcc=MJPG")
    assert isinstance(by_index, UvcSource)
    assert by_index.target == 2 and by_index.device == "/dev/video2"
    info = by_index.info
    assert (info.kind, info.width, info.height, info.fps, info.frame_count) == ("uvc", 1280, 720, 60.0, None)
    by_path = open_source("uvc:///dev/video0")
    assert isinstance(by_path, UvcSource) and by_path.target == "/dev/video0"
    assert by_path.eof is False
    # realtime/loop mean nothing live but are accepted, so one URL rewrite fits every scheme
    assert isinstance(open_source("uvc://0?realtime=0&loop=1"), UvcSource)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("uvc://front", "expected uvc://INDEX"),
        ("uvc://", "expected uvc://INDEX"),
        ("uvc://0?width=-5", "width='-5' must be a number > 0"),
        ("uvc://0?exposure=3", "unknown query parameter.*exposure"),
        ("uvc://0?realtime=sometimes", "must be 0 or 1"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(url)


# -- devices that are not there ---------------------------------------------------------------------------
@linux_only
def test_missing_device_index_names_the_device_and_the_fix() -> None:
    index = next(i for i in range(64, 128) if not Path(f"/dev/video{i}").exists())
    src = open_source(f"uvc://{index}")
    with pytest.raises(SourceError, match=rf"/dev/video{index}.*no such video device.*ls -l /dev/video\*"):
        src.open()
    src.close()  # safe after a failed open


def test_missing_device_path(tmp_path: Path) -> None:
    src = open_source(f"uvc://{tmp_path / 'video42'}")
    with pytest.raises(SourceError, match=r"video42: no such video device.*group video"):
        src.open()


@linux_only
def test_a_file_that_is_not_a_capture_device(tmp_path: Path) -> None:
    path = tmp_path / "video5"
    path.write_bytes(b"not a device")
    with pytest.raises(SourceError, match=r"video5: cannot open the video device.*group video"):
        open_source(f"uvc://{path}").open()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="needs a non-root POSIX user: root opens any device node, so no permission error occurs",
)
def test_unreadable_device_mentions_group_video(tmp_path: Path) -> None:
    path = tmp_path / "video3"
    path.write_bytes(b"")
    path.chmod(0)
    with pytest.raises(SourceError, match=r"video3: permission denied.*group video"):
        open_source(f"uvc://{path}").open()


@linux_only
def test_a_character_device_that_is_not_v4l2_says_so() -> None:
    """/dev/null is a real device node that answers VIDIOC_QUERYCAP with ENOTTY."""
    with pytest.raises(SourceError, match=r"/dev/null: cannot open the video device \(not a V4L2 video"):
        open_source("uvc:///dev/null?backend=any").open()


@linux_only
def test_a_regular_file_is_not_called_busy(tmp_path: Path) -> None:
    path = tmp_path / "video6"
    path.write_bytes(b"not a device")
    with pytest.raises(SourceError, match=r"video6: cannot open the video device \(not a device node"):
        open_source(f"uvc://{path}").open()


@linux_only
def test_holders_name_the_other_process(tmp_path: Path) -> None:
    held = tmp_path / "video8"
    held.write_bytes(b"")
    code = "import sys, time; f = open(sys.argv[1]); print('ready', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(held)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert any(pid == proc.pid and name.startswith("python") for pid, name in holders_of(held))
        assert holders_of(tmp_path / "nobody-has-this") == []
    finally:
        proc.kill()
        proc.wait(10)


@linux_only
def test_an_unplugged_device_is_named_as_gone(fake_device: Path) -> None:
    capture = ScriptedCapture([bgr(1)])
    src, _ = uvc(f"uvc://{fake_device}?retry_s=0.1", capture)
    src.open()
    assert src.read() is not None
    fake_device.unlink()  # stands for /dev/videoN vanishing when the cable is pulled
    with pytest.raises(SourceError, match=r"video9: no frame for 0\.1 s .*device node is gone: unplugged"):
        src.read()
    src.close()


def test_device_that_refuses_to_open(fake_device: Path) -> None:
    capture = ScriptedCapture([], opened=False)
    src, _ = uvc(f"uvc://{fake_device}", capture)
    with pytest.raises(SourceError, match=r"video9: cannot open the video device \(not a device node"):
        src.open()
    assert capture.released == 1


# -- the read path with a scripted device ---------------------------------------------------------------
def test_frames_are_stamped_at_read_and_settings_requested(fake_device: Path) -> None:
    gray = np.full((48, 64), 77, np.uint8)
    capture = ScriptedCapture([bgr(10), gray, bgr(30)], fps=60.0)
    src, calls = uvc(f"uvc://{fake_device}?width=1280&height=720&fps=60&fourcc=MJPG&backend=v4l2", capture)
    src.open()
    assert calls == [(str(fake_device), cv2.CAP_V4L2)]
    requested = dict(capture.set_calls)
    assert requested[cv2.CAP_PROP_FRAME_WIDTH] == 1280 and requested[cv2.CAP_PROP_FRAME_HEIGHT] == 720
    assert requested[cv2.CAP_PROP_FPS] == 60
    assert requested[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"MJPG")
    frames = []
    for _ in range(3):
        before = time.monotonic_ns()
        frame = src.read(1.0)
        assert frame is not None and before <= frame.t_acquired_ns <= time.monotonic_ns()
        frames.append(frame)
    assert [f.seq for f in frames] == [0, 1, 2]
    assert frames[1].image.shape == (48, 64, 3) and (frames[1].image == 77).all()  # gray -> BGR
    assert frames[0].source_id == "video9" and frames[0].modality == "US"
    assert frames[0].meta == {"device": str(fake_device)}
    assert src.info.fps == 60.0 and (src.info.width, src.info.height) == (64, 48)
    assert src.eof is False
    src.close()
    src.close()
    assert capture.released == 1
    with pytest.raises(SourceError, match="not open"):
        src.read()


def test_short_dropout_recovers(fake_device: Path, caplog: pytest.LogCaptureFixture) -> None:
    capture = ScriptedCapture([bgr(1), None, None, bgr(2)])
    src, _ = uvc(f"uvc://{fake_device}?retry_s=5", capture)
    src.open()
    assert src.read() is not None
    frame = src.read()  # two failed reads, retried, then a frame
    assert frame is not None and frame.seq == 1 and (frame.image == 2).all()
    assert src.info.extra["read_failures"] == 2
    assert "read failed; retrying" in caplog.text
    src.close()


def test_read_timeout_during_a_dropout_returns_none(fake_device: Path) -> None:
    capture = ScriptedCapture([None] * 1000)
    src, _ = uvc(f"uvc://{fake_device}?retry_s=5", capture)
    src.open()
    t0 = time.monotonic()
    assert src.read(timeout=0.1) is None  # not yet declared lost
    assert time.monotonic() - t0 < 2.0
    assert not src.eof
    src.close()


def test_a_device_that_stops_delivering_raises_after_retry_s(fake_device: Path) -> None:
    capture = ScriptedCapture([bgr(1)])
    src, _ = uvc(f"uvc://{fake_device}?retry_s=0.2", capture)
    src.open()
    assert src.read() is not None
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"video9: no frame for 0\.2 s .*unplugged or failed"):
        src.read()
    assert 0.15 <= time.monotonic() - t0 < 3.0
    src.close()


# -- the read path with the real OpenCV capture class ------------------------------------------------------
def test_real_capture_class_through_backend_any(make_clip: Any) -> None:
    """cv2.VideoCapture(path, CAP_ANY) on a clip: the default factory and the same read code as a device."""
    clip = make_clip("camera.avi", n=4, fourcc="MJPG")
    src = open_source(f"uvc://{clip}?backend=any&retry_s=0.2")
    assert isinstance(src, UvcSource)
    with src:
        frames = [src.read(1.0) for _ in range(4)]
        assert all(f is not None and f.image.shape == (48, 64, 3) for f in frames)
        assert [f.seq for f in frames if f] == [0, 1, 2, 3]
        stamps = [f.t_acquired_ns for f in frames if f]
        assert stamps == sorted(stamps)
        with pytest.raises(SourceError, match=r"camera\.avi: no frame for 0\.2 s"):
            src.read()  # a file ends; a device that stops is treated the same way
