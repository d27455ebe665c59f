"""Stage liveness and the watchdog's decisions, on an injected clock (no sleeps, no sockets)."""

from __future__ import annotations

import logging
import threading

import pytest

from edge.runtime.health import READ_MARGIN_S, Deadlines, Health, Watchdog
from edge.runtime.notify import Notify


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


class Recorder(Notify):
    """systemd's side: every notification as its fields (sent through nothing)."""

    def __init__(self, watchdog_usec: int | None = 2_000_000) -> None:
        super().__init__("@test", watchdog_usec=watchdog_usec)
        self.sent: list[tuple[str, ...]] = []

    def send(self, *fields: str) -> bool:
        self.sent.append(fields)
        return True

    def fields(self) -> list[str]:
        return [f for msg in self.sent for f in msg]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_stage_that_loops_is_never_stuck_and_one_that_stops_is_after_its_deadline(clock: Clock) -> None:
    h = Health(clock)
    h.register("acquisition", 15.0)
    h.register("inference", 10.0)
    for _ in range(30):  # both loop for 30 s: an idle loop (no frame) is progress too
        clock.advance(1.0)
        h.beat("acquisition")
        h.beat("inference")
    assert h.stuck() == [] and h.status_text() is None
    # Inference entered a model call that does not return; acquisition goes on.
    clock.advance(10.0)
    h.beat("acquisition")
    assert h.stuck() == [], "exactly at the deadline is not past it"
    clock.advance(2.0)
    h.beat("acquisition")
    assert h.stuck() == [("inference", 12.0)]
    assert h.status_text() == "STUCK: inference 12 s"
    h.beat("inference")  # the call returned after all
    assert h.stuck() == [] and h.status_text() is None


def test_progress_counts_from_registration_and_several_stuck_are_named_longest_first(clock: Clock) -> None:
    h = Health(clock)
    h.register("display", 10.0)
    clock.advance(5.0)
    h.register("results", 3.0)
    clock.advance(2.0)
    assert h.stuck() == []
    clock.advance(4.0)
    assert h.stuck() == [("display", 11.0), ("results", 6.0)]
    assert h.status_text() == "STUCK: display 11 s, results 6 s"
    assert h.failure() == (
        "display made no progress for 11.0 s (deadline 10 s); "
        "results made no progress for 6.0 s (deadline 3 s)"
    )


def test_an_ended_stage_is_no_longer_watched_and_an_unknown_one_is_ignored(clock: Clock) -> None:
    h = Health(clock)
    h.register("acquisition", 1.0)
    h.beat("nobody")  # no error: beat is for the hot path
    h.done("acquisition")  # the source ended; its loop returned
    h.done("never-registered")
    clock.advance(60.0)
    assert h.stuck() == [] and h.silences() == []
    assert h.report() == {"deadlines_s": {"acquisition": 1.0}, "stuck": {}}, "what was watched"


def test_a_stage_in_a_lower_layer_reports_its_progress_through_a_callable(clock: Clock) -> None:
    h = Health(clock)
    loop_at: list[float | None] = [None]
    h.register("uplink", 120.0, progress=lambda: loop_at[0])
    clock.advance(100.0)
    loop_at[0] = clock.t
    clock.advance(100.0)
    assert h.stuck() == []
    clock.advance(21.0)
    assert h.stuck() == [("uplink", 121.0)]


def test_a_broken_progress_callable_counts_as_no_progress_and_is_logged(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    h = Health(clock)

    def broken() -> float:
        raise RuntimeError("gone")

    h.register("uplink", 5.0, progress=broken)
    clock.advance(6.0)
    with caplog.at_level(logging.ERROR):
        assert h.stuck() == [("uplink", 6.0)]
    assert "reading the progress of uplink failed" in caplog.text


def test_deadlines_are_checked_and_acquisition_includes_the_waits_it_makes_by_design() -> None:
    d = Deadlines()
    live = d.for_pipeline(read_timeout_s=0.1, inference_waits=False, display_waits=False)
    assert live == {"acquisition": 15.0, "inference": 10.0, "display": 10.0, "results": 30.0}
    every = d.for_pipeline(read_timeout_s=0.1, inference_waits=True, display_waits=True)
    assert every["acquisition"] == 15.0 + 10.0 + 10.0
    slow_read = Deadlines(acquisition_s=1.0).for_pipeline(
        read_timeout_s=8.0, inference_waits=False, display_waits=False
    )
    assert slow_read["acquisition"] == 8.0 + READ_MARGIN_S
    with pytest.raises(ValueError, match="inference_s must be above 0 s"):
        Deadlines(inference_s=0)
    with pytest.raises(ValueError, match="stage 'display'"):
        Health().register("display", -1.0)


def test_check_logs_a_stuck_stage_once_with_its_thread_stack_and_the_recovery(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    h = Health(clock)
    h.register("inference", 10.0)
    release, beaten = threading.Event(), threading.Event()

    def model_call_that_does_not_return() -> None:
        release.wait(10.0)

    def inference_loop() -> None:
        h.beat("inference")
        beaten.set()
        model_call_that_does_not_return()

    t = threading.Thread(target=inference_loop)
    t.start()
    try:
        assert beaten.wait(5.0)
        clock.advance(11.0)
        with caplog.at_level(logging.WARNING):
            h.check()
            clock.advance(5.0)
            h.check()  # still the same episode: not logged again
            assert caplog.text.count("inference made no progress") == 1
            assert "model_call_that_does_not_return" in caplog.text, "the stack shows where it hangs"
            h.beat("inference")
            h.check()
        assert "inference progresses again after 16.0 s" in caplog.text
    finally:
        release.set()
        t.join(5.0)
    assert h.report() == {
        "deadlines_s": {"inference": 10.0},
        "stuck": {"inference": {"times": 1, "longest_s": 16.0, "at_end": False}},
    }
    clock.advance(30.0)
    assert h.report()["stuck"]["inference"] == {"times": 2, "longest_s": 30.0, "at_end": True}


def test_the_watchdog_pings_every_half_interval_only_while_every_stage_progresses(clock: Clock) -> None:
    h = Health(clock)
    h.register("acquisition", 15.0)
    h.register("inference", 10.0)
    sd = Recorder(watchdog_usec=30_000_000)  # WatchdogSec=30s
    w = Watchdog(h, sd)
    assert w.ping_s == 15.0 and w.check_s == 1.0
    for _ in range(31):  # 30 s of progress, checked every second
        h.beat("acquisition")
        h.beat("inference")
        w.step()
        clock.advance(1.0)
    assert w.pings == 3, "at 0, 15 and 30 s"
    assert sd.sent[0] == ("STATUS=running",)
    for _ in range(20):  # inference hangs; acquisition goes on
        h.beat("acquisition")
        w.step()
        clock.advance(1.0)
    assert w.pings == 3, "not fed once inference was past its deadline: systemd restarts the service"
    statuses = [f for f in sd.fields() if f.startswith("STATUS=")]
    assert "STATUS=STUCK: inference 11 s" in statuses
    last_stuck = max(i for i, m in enumerate(sd.sent) if m[0].startswith("STATUS=STUCK"))
    first_stuck = min(i for i, m in enumerate(sd.sent) if m[0].startswith("STATUS=STUCK"))
    assert all(m != ("WATCHDOG=1",) for m in sd.sent[first_stuck:last_stuck])
    h.beat("inference")  # it returned: fed again at once, not half an interval later
    w.step()
    assert sd.sent[-2:] == [("STATUS=running",), ("WATCHDOG=1",)] and w.pings == 4


def test_without_a_systemd_watchdog_it_checks_but_never_pings(clock: Clock) -> None:
    h = Health(clock)
    h.register("display", 1.0)
    sd = Recorder(watchdog_usec=None)  # Type=notify without WatchdogSec
    w = Watchdog(h, sd, check_s=0.5)
    assert w.ping_s is None and w.check_s == 0.5
    w.step()
    clock.advance(2.0)
    w.step()
    assert sd.sent == [("STATUS=running",), ("STATUS=STUCK: display 2 s",)]


def test_the_notifier_says_ready_at_start_and_stopping_at_the_end_with_why(clock: Clock) -> None:
    h = Health(clock)
    h.register("inference", 10.0)
    sd = Recorder(watchdog_usec=2_000_000)
    with h.notifier(sd, check_s=0.01) as w:
        assert sd.sent[0] == ("READY=1", "STATUS=running")
        assert w.ping_s == 1.0
    assert sd.sent[-1] == ("STOPPING=1", "STATUS=stopping")
    h.register("inference", 10.0)
    with h.notifier(sd):
        clock.advance(11.0)  # stuck at the end (systemd stopped it for that)
    assert sd.sent[-1] == ("STOPPING=1", "STATUS=inference made no progress for 11.0 s (deadline 10 s)")


def test_a_failing_check_stops_the_pings_but_not_the_thread(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    h = Health(clock)
    sd = Recorder()
    calls = threading.Semaphore(0)

    def failing(now: float | None = None) -> list[tuple[str, float]]:
        calls.release()
        raise RuntimeError("bug")

    h.check = failing  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR), h.notifier(sd, check_s=0.01):
        assert calls.acquire(timeout=5.0) and calls.acquire(timeout=5.0), "it kept checking"
    assert "watchdog: check failed" in caplog.text
    assert ("WATCHDOG=1",) not in sd.sent
