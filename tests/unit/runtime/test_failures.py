"""One mechanism for every stage's failures: counted, logged once in full, alarmed, stopped past a budget."""

from __future__ import annotations

import errno
import logging

import pytest

from edge.runtime.failures import (
    FailureBudget,
    StageFailure,
    StageMonitor,
    is_disk_full,
    stop_expendable,
)


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns

    def advance(self, s: float) -> None:
        self.ns += int(s * 1e9)


def monitor(clock: Clock | None = None, **budget: float) -> tuple[StageMonitor, list[StageFailure]]:
    stopped: list[StageFailure] = []
    m = StageMonitor(FailureBudget(**budget), on_over_budget=stopped.append, clock=clock or Clock())  # type: ignore[arg-type]
    return m, stopped


def test_one_traceback_per_kind_of_error_then_summaries(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    m, _ = monitor(clock, max_consecutive=0, budget_s=0, summary_every_s=5.0)
    with caplog.at_level(logging.ERROR, logger="edge.runtime.failures"):
        for i in range(100):
            m.failed("inference", ValueError(f"bad frame {i}"), f"frame {i}")
            clock.advance(0.1)  # 10 s of failures
        m.failed("inference", KeyError("other"), "frame 100")
    traced = [r for r in caplog.records if r.exc_info]
    assert [r.exc_info[0] for r in traced if r.exc_info] == [ValueError, KeyError], "each kind once in full"
    summaries = [r.getMessage() for r in caplog.records if "failures in a row" in r.getMessage()]
    assert 1 <= len(summaries) <= 3, summaries  # at most one per 5 s, not one per frame
    assert "inference keeps failing (3 in a row): HUD alarm raised" in caplog.text
    assert m.stage("inference").consecutive == 101 and m.stage("inference").failures == 101


def test_the_alarm_comes_after_a_few_in_a_row_and_goes_with_a_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m, _ = monitor(alarm_after=3)
    m.ok("video")
    m.failed("video", OSError("x"))
    m.failed("video", OSError("x"))
    assert m.alarm_text() is None, "two bad frames are no alarm"
    m.failed("video", OSError(5, "Input/output error"))
    assert m.alarm_text() == "VIDEO FAILING (3x): OSError: [Errno 5] Input/output error"
    with caplog.at_level(logging.WARNING, logger="edge.runtime.failures"):
        m.ok("video")
    assert m.alarm_text() is None and "video recovered after 3 failures in a row" in caplog.text
    assert m.stage("video").failures == 3 and m.stage("video").successes == 2


def test_over_budget_by_count_stops_once_naming_stage_count_and_error() -> None:
    m, stopped = monitor(alarm_after=2, max_consecutive=5, budget_s=0)
    results = [m.failed("inference", RuntimeError("shape mismatch")) for _ in range(7)]
    assert results == [False] * 4 + [True, False, False], "the stop is asked for once"
    (failure,) = stopped
    assert m.over_budget is failure
    assert (failure.stage, failure.count, failure.last_error) == (
        "inference",
        5,
        "RuntimeError: shape mismatch",
    )
    assert "max_consecutive_failures = 5" in failure.why
    assert failure.describe().startswith("inference failed 5 times in a row over 0.0 s")


def test_over_budget_by_time_for_a_slow_stage() -> None:
    clock = Clock()
    m, stopped = monitor(clock, max_consecutive=1000, budget_s=10.0)
    for _ in range(5):
        m.failed("results", OSError("slow disk"))
        clock.advance(3.0)
    (failure,) = stopped
    assert failure.count == 5 and failure.seconds == pytest.approx(12.0)
    assert "failure_budget_s = 10" in failure.why


def test_a_success_between_failures_resets_the_streak() -> None:
    m, stopped = monitor(max_consecutive=3, budget_s=0)
    for _ in range(10):
        m.failed("inference", ValueError("one bad frame"))
        m.ok("inference")
    assert stopped == [] and m.stage("inference").failures == 10


def test_a_stage_that_never_worked_fails_the_run_however_short() -> None:
    m, _ = monitor(alarm_after=3)
    m.ok("inference")
    for _ in range(3):
        m.failed("video", OSError("codec missing"))
    m.failed("inference", ValueError("x"))
    failure = m.never_succeeded()
    assert failure is not None and failure.stage == "video" and failure.why == "never succeeded"
    m2, _ = monitor(alarm_after=3)
    m2.failed("video", OSError("x"))
    assert m2.never_succeeded() is None, "one failure at the very end is not a stage that never worked"


def test_disk_full_is_found_through_the_chain_of_errors() -> None:
    efbig = OSError(errno.EFBIG, "File too large")
    try:
        try:
            raise efbig
        except OSError as exc:
            raise RuntimeError("writing video failed") from exc
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("x")) and not is_disk_full(None)


class Part:
    def __init__(self, expendable: bool) -> None:
        self.expendable = expendable
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        raise OSError(errno.ENOSPC, "the last flush fails too")


def test_a_full_disk_stops_the_expendable_outputs_and_keeps_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m, stopped = monitor(alarm_after=1, max_consecutive=1)
    video, outbox = Part(expendable=True), Part(expendable=False)
    full = OSError(errno.ENOSPC, "No space left on device")
    with caplog.at_level(logging.CRITICAL, logger="edge.runtime.failures"):
        assert m.output_failed("video", video, full) is False
        assert m.output_failed("video", video, full) is False
    assert caplog.text.count("DISK FULL writing video") == 1 and stopped == []
    assert m.disk_full == "video: OSError: [Errno 28] No space left on device"
    assert m.alarm_text() == "DISK FULL: recording stopped"
    kept = stop_expendable([("video", video), ("outbox", outbox)], m)
    assert kept == [("outbox", outbox)] and video.closed == 1 and outbox.closed == 0
    assert m.stage("video").stopped and "disk full" in m.stage("video").stopped
    assert m.report()["notes"] == [f"video stopped: {m.stage('video').stopped}"]
    # The outbox is not expendable: its failures count against the budget as any stage's.
    assert m.output_failed("outbox", outbox, full) is True and stopped[0].stage == "outbox"


def test_the_report_gives_every_stage_and_the_budget() -> None:
    m, _ = monitor()
    m.ok("acquisition")
    m.failed("overlay", ValueError("x"))
    report = m.report()
    assert report["budget"] == {
        "alarm_after_failures": 3,
        "max_consecutive_failures": 150,
        "failure_budget_s": 10.0,
    }
    assert report["stages"]["acquisition"] == {
        "successes": 1, "failures": 0, "failing_in_a_row": 0, "last_error": None, "stopped": None,
    }  # fmt: skip
    assert report["stages"]["overlay"]["last_error"] == "ValueError: x"
    assert m.stages()["acquisition"].last_ok_ns > 0, "the last progress, for a watchdog"


def test_another_judge_may_fail_the_run_in_its_own_words() -> None:
    m, stopped = monitor()
    stuck = StageFailure("inference", 0, 12.0, "", "stuck", text="inference made no progress for 12.0 s")
    assert m.fail(stuck) is True and m.fail(stuck) is False, "the first reason is the run's"
    assert stopped == [stuck] and stuck.describe() == "inference made no progress for 12.0 s"
