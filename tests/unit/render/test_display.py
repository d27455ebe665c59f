"""Display sinks: video file, snapshots, null, and the no-display fallback. No window is ever opened."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import edge.render.display as display
from edge.errors import ConfigError, EdgeError
from edge.render.display import (
    DisplayError,
    NullSink,
    Sink,
    SnapshotSink,
    VideoFileSink,
    WindowSink,
    build_sinks,
    display_available,
)


@pytest.fixture
def no_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(display.sys, "platform", "linux")


def frame(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : (i * 5) % w] = (0, 200, 255)
    return img


def test_video_file_sink_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r1" / "overlay.mp4"  # parent folders do not exist yet
    sink = VideoFileSink(path)
    sink.open(64, 48, 15.0)
    for i in range(10):
        sink.show(frame(i), i)
    sink.show(frame(10, 100, 80), 10)  # another size: resized to the first
    sink.show(np.full((48, 64), 128, np.uint8), 11)  # gray: converted
    sink.close()
    sink.close()  # twice is fine
    assert sink.frames_written == 12
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (48, 64, 3)
        n += 1
    cap.release()
    assert n == 12


def test_video_file_sink_without_open_uses_default_fps(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "v.mp4")
    sink.show(frame(1), 0)
    sink.close()
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    cap.release()


def test_video_file_sink_codec_failure_names_path_and_codec(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "v.mp4", fourcc="ZZZZ")
    sink.open(64, 48, 10.0)
    with pytest.raises(DisplayError, match=r"v\.mp4.*'ZZZZ'") as info:
        sink.show(frame(0), 0)
    assert isinstance(info.value, EdgeError)
    sink.close()
    with pytest.raises(DisplayError, match="fourcc"):
        VideoFileSink(tmp_path / "v.mp4", fourcc="mp4")


def test_snapshot_sink_rate_limit_with_fake_clock(tmp_path: Path) -> None:
    now = [0.0]
    sink = SnapshotSink(tmp_path / "snaps", every_s=2.0, clock=lambda: now[0])
    sink.open(64, 48, None)
    for seq, t in enumerate([0.0, 0.5, 1.0, 1.99, 2.0, 3.9, 4.5]):
        now[0] = t
        sink.show(frame(seq), seq)
    names = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert names == ["snapshot_0.png", "snapshot_4.png", "snapshot_6.png"]
    img = cv2.imread(str(tmp_path / "snaps" / "snapshot_4.png"))
    assert img is not None and np.array_equal(img, frame(4))
    # An explicit snapshot is not rate limited and does not reset the timer.
    now[0] = 4.6
    explicit = sink.snapshot(frame(99), 99)
    assert explicit.name == "snapshot_99.png" and explicit.exists()
    assert sink.snapshot(frame(1)).name.startswith("snapshot_2")  # UTC time stamp without a seq
    now[0] = 6.5
    sink.show(frame(7), 7)
    assert (tmp_path / "snaps" / "snapshot_7.png").exists()
    assert sink.saved == 6
    assert not sink.wants_stop()
    sink.close()


def test_snapshot_sink_write_failure_is_display_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    sink = SnapshotSink(blocker / "snaps", every_s=1.0)
    with pytest.raises(DisplayError, match="not_a_dir"):
        sink.show(frame(0), 0)


def test_null_sink_and_protocol(tmp_path: Path) -> None:
    null = NullSink()
    null.open(10, 10, None)
    null.show(frame(0), 0)
    null.show(frame(1), 1)
    null.close()
    assert null.frames == 2 and not null.wants_stop() and null.name == "null"
    for sink in (null, VideoFileSink(tmp_path / "v.mp4"), SnapshotSink(tmp_path, 1.0), WindowSink("t")):
        assert isinstance(sink, Sink)


def test_display_available_needs_a_display_on_linux(no_display: None) -> None:
    ok, reason = display_available()
    assert not ok and reason == "DISPLAY unset"
    qt = "  GUI:                           QT5\n"
    there = lambda env: (True, "a test window opened")  # noqa: E731
    assert display_available(build_info=qt, environ={"DISPLAY": ":0"}, platform="linux", probe=there)[0]
    wayland = {"WAYLAND_DISPLAY": "wayland-0"}
    assert display_available(build_info=qt, environ=wayland, platform="linux", probe=there)[0]
    assert display_available(build_info=qt, environ={}, platform="win32", probe=there)[0]
    ok, reason = display_available(build_info="  GUI:    NONE\n", environ={"DISPLAY": ":0"}, platform="linux")
    assert not ok and "GUI" in reason


def test_a_display_named_but_not_answering_is_found_by_a_child_not_by_an_abort(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No X server on :99: Qt aborts the process that tries (rc 134); a child takes the abort for us.
    env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
    env["DISPLAY"] = ":99"
    monkeypatch.setattr(display, "_probed", {})
    ok, reason = display_available(environ=env, platform="linux")
    assert not ok and reason.startswith("DISPLAY=:99: ") and "test window" in reason
    runs: list[object] = []
    monkeypatch.setattr(display.subprocess, "run", lambda *a, **k: runs.append(a))
    assert display.probe_display(env) == (False, reason.removeprefix("DISPLAY=:99: "))
    assert runs == [], "one child per display, not one per window"


def test_build_sinks_uses_the_display_the_caller_already_probed(tmp_path: Path) -> None:
    sinks = build_sinks(["window"], video_path=tmp_path / "o.ts", display=(False, "DISPLAY=:99: no server"))
    assert [type(s) for s in sinks] == [VideoFileSink]
    assert [type(s) for s in build_sinks(["window"], display=(True, "ok"))] == [WindowSink]


def test_window_sink_refuses_without_display(no_display: None) -> None:
    sink = WindowSink("test")
    with pytest.raises(DisplayError, match="DISPLAY unset"):
        sink.open(64, 48, 30.0)
    with pytest.raises(DisplayError, match="thread"):
        sink.show(frame(0), 0)
    sink.close()


def test_no_display_falls_back_to_video_with_warning(
    no_display: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = tmp_path / "runs" / "r1" / "overlay.mp4"
    with caplog.at_level(logging.WARNING, logger="edge.render.display"):
        sinks = build_sinks(["window"], headless=False, video_path=video, snapshot_dir=None)
    assert len(sinks) == 1 and isinstance(sinks[0], VideoFileSink) and sinks[0].path == video
    assert f"no display (DISPLAY unset): writing overlay video to {video} instead of a window" in caplog.text
    assert not any(isinstance(s, WindowSink) for s in sinks)


def test_headless_never_makes_a_window(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(display, "display_available", lambda: (True, "GUI QT5, DISPLAY=:0"))
    with caplog.at_level(logging.WARNING, logger="edge.render.display"):
        sinks = build_sinks("window", headless=True, video_path=tmp_path / "o.mp4")
    assert [type(s) for s in sinks] == [VideoFileSink]
    assert "headless" in caplog.text
    # With a display and not headless the window is made (never opened here).
    assert [type(s) for s in build_sinks(["window"], headless=False)] == [WindowSink]


def test_window_and_video_without_display_gives_one_video(no_display: None, tmp_path: Path) -> None:
    sinks = build_sinks("window, video", headless=False, video_path=tmp_path / "o.mp4")
    assert [type(s) for s in sinks] == [VideoFileSink]


def test_no_display_and_no_video_path(no_display: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.render.display"):
        assert build_sinks(["window"], headless=False) == []
    assert "neither shown nor recorded" in caplog.text


def test_build_sinks_names_and_errors(tmp_path: Path) -> None:
    sinks = build_sinks(
        ["video", "snapshot", "null", "video"],
        headless=True,
        video_path=tmp_path / "o.mp4",
        snapshot_dir=tmp_path / "snaps",
        snapshot_every_s=3.0,
        fourcc="MJPG",
    )
    assert [s.name for s in sinks] == ["video", "snapshots", "null"]
    assert isinstance(sinks[0], VideoFileSink) and sinks[0].fourcc == "MJPG"
    assert isinstance(sinks[1], SnapshotSink) and sinks[1].every_s == 3.0
    with pytest.raises(ConfigError, match="'screen'"):
        build_sinks(["screen"], headless=True)
    with pytest.raises(ConfigError, match="video path"):
        build_sinks(["video"], headless=True)
    with pytest.raises(ConfigError, match="snapshot folder"):
        build_sinks(["snapshots"], headless=True)
