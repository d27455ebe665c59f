"""The overlay recording: MPEG-TS written through a copy that sees the disk's errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.render.sink import DisplayError
from edge.render.video import VideoFileSink, recording_suffix


def frame(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : (i * 5) % w] = (0, 200, 255)
    return img


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_the_container_follows_the_codec() -> None:
    assert recording_suffix("mp4v") == ".ts" and recording_suffix("XVID") == ".ts"
    assert recording_suffix("MJPG") == ".mkv" and recording_suffix("VP90") == ".mkv"


@pytest.mark.parametrize(("name", "fourcc"), [("overlay.ts", "mp4v"), ("overlay.mkv", "MJPG")])
def test_a_streamed_recording_round_trip(tmp_path: Path, name: str, fourcc: str) -> None:
    path = tmp_path / "run" / name
    sink = VideoFileSink(path, fourcc)
    sink.open(64, 48, 25.0)
    for i in range(20):
        sink.show(frame(i), i)
    sink.close()
    sink.close()
    assert sink.frames_written == 20 and sink.failure is None
    assert sink.bytes_written == path.stat().st_size > 0, "every byte went through the copy"
    assert count_frames(path) == 20
    assert sink._pump is not None and not sink._pump.fifo.parent.exists(), "the FIFO's folder is removed"


def test_a_writer_that_cannot_open_names_codec_and_path_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "overlay.ts"
    sink = VideoFileSink(path, fourcc="ZZZZ")
    sink.open(64, 48, 10.0)
    for _ in range(2):  # tried again on the next frame, with the same answer
        with pytest.raises(DisplayError, match=r"overlay\.ts with codec 'ZZZZ'"):
            sink.show(frame(0), 0)
    sink.close()
    assert not path.exists() and sink.frames_written == 0


def test_a_path_that_cannot_be_written_raises_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    sink = VideoFileSink(blocker / "overlay.ts")
    with pytest.raises(DisplayError, match=r"a_file/overlay\.ts") as info:
        sink.show(frame(0), 0)
    assert isinstance(info.value.__cause__, OSError)


_CHILD = textwrap.dedent(
    """
    import errno, json, resource, signal, sys
    import numpy as np
    from edge.render.display import SnapshotSink
    from edge.render.video import VideoFileSink
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    out, rng = sys.argv[1], np.random.default_rng(0)
    video = VideoFileSink(out + "/overlay.ts")
    err = None
    for i in range(400):
        try:
            video.show(rng.integers(0, 255, (240, 320, 3), np.uint8), i)
        except Exception as exc:
            err = exc
            break
    video.close()
    snaps = SnapshotSink(out + "/snaps", 0.0)
    try:
        snaps.snapshot(rng.integers(0, 255, (600, 800, 3), np.uint8), 1)
        snap_err = None
    except Exception as exc:
        snap_err = exc
    print(json.dumps({
        "error": repr(err), "errno": getattr(err and err.__cause__, "errno", None),
        "frames": video.frames_written, "bytes": video.bytes_written,
        "snap_errno": getattr(snap_err and snap_err.__cause__, "errno", None),
    }))
    """
)


def test_a_full_disk_is_raised_from_the_real_write(tmp_path: Path) -> None:
    # A file size limit in a child makes the disk "full" for real: EFBIG from write(2).
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["errno"] == 27 and "DisplayError" in got["error"] and "File too large" in got["error"]
    assert got["bytes"] <= 200_000 and (tmp_path / "overlay.ts").stat().st_size == got["bytes"]
    assert 0 < count_frames(tmp_path / "overlay.ts") <= got["frames"], "what was written plays"
    assert got["snap_errno"] == 27 and not (tmp_path / "snaps" / "snapshot_1.png").exists(), "no torn PNG"


def test_where_no_fifo_can_be_made_the_encoder_writes_the_file_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(path: object, mode: int = 0o666) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("edge.render.video.os.mkfifo", refuse)
    path = tmp_path / "overlay.ts"
    sink = VideoFileSink(path)
    with caplog.at_level(logging.WARNING, logger="edge.render.video"):
        for i in range(5):
            sink.show(frame(i), i)
        sink.close()
    assert "a full disk will not be seen" in caplog.text and sink.bytes_written is None
    assert count_frames(path) == 5
