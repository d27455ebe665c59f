"""The recording encoded by a child process fed through shared memory: every frame written, its CPU
reported, its loss raised as a DisplayError, nothing left behind in shared memory."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.render import encoder
from edge.render.encoder import EncoderProcess
from edge.render.sink import DisplayError
from edge.render.video import VideoFileSink
from tests.unit.render.test_video import count_frames, frame


def _rings() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.glob("edge-encoder-*")} if shm.is_dir() else set()


def test_frames_go_through_the_child_and_its_cpu_is_reported(tmp_path: Path) -> None:
    before = _rings()
    sink = VideoFileSink(tmp_path / "overlay.ts")
    assert isinstance(sink._encoder, EncoderProcess)
    sink.open(64, 48, 25.0)
    buf = np.empty((48, 64, 3), np.uint8)
    for i in range(40):
        np.copyto(buf, frame(i))  # the caller's buffer, reused at once: the slot holds a copy
        sink.show(buf, i)
    sink.close()
    assert sink.frames_written == 40 and sink.failure is None
    assert count_frames(tmp_path / "overlay.ts") == 40
    assert sink.encoder_cpu_ns() > 0, "the child's CPU time is there to report"
    assert _rings() == before, "the frame ring is unlinked"


def test_in_process_encoding_when_asked(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "overlay.ts", process=False)
    assert sink._encoder is None
    for i in range(10):
        sink.show(frame(i), i)
    sink.close()
    assert sink.frames_written == 10 == count_frames(tmp_path / "overlay.ts")
    assert sink.encoder_cpu_ns() == 0


def test_an_encoder_that_dies_is_a_display_error_naming_the_file(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "overlay.ts")
    sink.show(frame(0), 0)
    assert sink._encoder is not None
    os.kill(sink._encoder.pid, signal.SIGKILL)
    with pytest.raises(DisplayError, match=r"overlay\.ts failed after \d+ frames: the encoder process"):
        for i in range(1, 200):  # the ring fills, or the pipe breaks: either way it is seen
            sink.show(frame(i), i)
    sink.close()
    assert sink.failure is not None


def test_a_sink_never_shown_ends_its_child(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "overlay.ts")
    enc = sink._encoder
    assert enc is not None
    sink.close()
    assert enc._proc.poll() is not None and not (tmp_path / "overlay.ts").exists()


def test_a_prestarted_encoder_is_taken_warm_by_the_next_sink(tmp_path: Path) -> None:
    from edge.render import encoder

    encoder.prestart()
    spare = encoder._spare
    assert spare is not None
    sink = VideoFileSink(tmp_path / "overlay.ts")
    assert sink._encoder is spare and encoder._spare is None, "taken, not started anew"
    assert sink.wait_ready() and spare.ready.is_set()
    sink.show(frame(0), 0)
    sink.close()
    assert sink.frames_written == 1


def test_ts_writer_opens_without_the_codec_tag_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # OpenCV itself prints the warning for an MPEG-TS file (this is what open_writer drops) ...
    plain = cv2.VideoWriter(str(tmp_path / "plain.ts"), cv2.VideoWriter.fourcc(*"mp4v"), 30, (64, 48))
    plain.release()
    assert "is not supported with codec id" in capfd.readouterr().err
    # ... and open_writer's file is the same MPEG-4 stream, every frame readable, without it.
    path = tmp_path / "quiet.ts"
    writer = encoder.open_writer(str(path), "mp4v", 30, (64, 48))
    assert writer.isOpened()
    for i in range(40):
        writer.write(frame(i))
    writer.release()
    assert "is not supported" not in capfd.readouterr().err
    assert count_frames(path) == 40
