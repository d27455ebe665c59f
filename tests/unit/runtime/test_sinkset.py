"""The display sinks as stages: a lost window falls back to the recording, a full disk stops recordings."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np

from edge.render.display import DisplayError
from edge.runtime.failures import FailureBudget, StageMonitor
from edge.runtime.sinkset import SinkSet


class Sink:
    def __init__(self, name: str, *, open_error: Exception | None = None, show_error: Exception | None = None,
                 expendable: bool = False) -> None:  # fmt: skip
        self.name, self.open_error, self.show_error, self.expendable = (
            name,
            open_error,
            show_error,
            expendable,
        )
        self.opened: tuple[int, int, float | None] | None = None
        self.shown: list[int] = []
        self.closed = 0
        self.path = Path(f"/runs/x/{name}.ts")

    def open(self, width: int, height: int, fps: float | None) -> None:
        if self.open_error:
            raise self.open_error
        self.opened = (width, height, fps)

    def show(self, image: np.ndarray, frame_seq: int) -> None:
        if self.show_error:
            raise self.show_error
        self.shown.append(frame_seq)

    def wants_stop(self) -> bool:
        return False

    def close(self) -> None:
        self.closed += 1
        if self.name == "stuck":
            raise OSError("cannot close")


IMAGE = np.zeros((4, 4, 3), np.uint8)


def test_a_window_that_cannot_open_is_replaced_by_the_recording_and_said_so() -> None:
    health = StageMonitor(FailureBudget())
    window = Sink("window", open_error=DisplayError("cannot open window: could not connect to display :99"))
    made: list[Sink] = []
    sinks = SinkSet([window], health, fallback=lambda: made.append(Sink("video")) or made[-1])
    sinks.open(64, 48, 30.0)
    (video,) = made
    assert sinks.sinks == [video] and video.opened == (64, 48, 30.0) and window.closed == 1
    assert sinks.show(IMAGE, 0) == (1, 0) and video.shown == [0]
    (note,) = health.notes
    assert note.startswith(
        "window stopped: no display (cannot open window: could not connect to display :99)"
    )
    assert "recording the overlay (/runs/x/video.ts) instead" in note
    assert health.never_succeeded() is None and health.alarm_text() is None, "a fallback is no failure"


def test_a_window_that_keeps_failing_is_replaced_after_the_alarm() -> None:
    health = StageMonitor(FailureBudget(alarm_after=3))
    window = Sink("window", show_error=DisplayError("window 'scanner edge' gone"))
    video = Sink("video")
    sinks = SinkSet([window], health, fallback=lambda: video)
    sinks.open(8, 8, None)
    assert [sinks.show(IMAGE, i)[0] for i in range(5)] == [0, 0, 0, 1, 1]
    assert sinks.sinks == [video] and video.shown == [3, 4]


def test_without_a_fallback_a_lost_window_counts_as_failing() -> None:
    health = StageMonitor(FailureBudget(alarm_after=2, max_consecutive=4))
    window = Sink("window", show_error=DisplayError("gone"))
    sinks = SinkSet([window], health)
    sinks.open(8, 8, None)
    for i in range(4):
        sinks.show(IMAGE, i)
    assert health.over_budget is not None and health.over_budget.stage == "window"


def test_a_full_disk_closes_every_expendable_sink_and_keeps_the_window() -> None:
    health = StageMonitor(FailureBudget(max_consecutive=1))
    full = DisplayError("writing video failed")
    full.__cause__ = OSError(errno.EFBIG, "File too large")
    video = Sink("video", show_error=full, expendable=True)
    snaps = Sink("snapshots", expendable=True)
    window = Sink("window")
    sinks = SinkSet([video, snaps, window], health)
    sinks.open(8, 8, None)
    assert sinks.show(IMAGE, 0) == (2, 1)  # the video failed: the disk is full
    assert sinks.show(IMAGE, 1) == (1, 0)  # then both recordings are closed; the window goes on
    assert sinks.sinks == [window] and video.closed == snaps.closed == 1
    assert health.over_budget is None and health.disk_full == "video: OSError: [Errno 27] File too large"


def test_close_closes_every_sink_even_when_one_fails() -> None:
    health = StageMonitor()
    stuck, other = Sink("stuck"), Sink("other")
    sinks = SinkSet([stuck, other], health)
    sinks.close()
    assert stuck.closed == other.closed == 1
