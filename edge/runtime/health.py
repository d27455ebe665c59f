"""Stage liveness and systemd's watchdog: a stuck stage shows on the HUD, and systemd restarts the service.

Each stage of the live loop (acquisition, inference, display, the results handlers, the uplink)
registers with its own deadline and calls :meth:`Health.beat` every time its loop goes round. A
stage whose loop has not gone round for longer than its deadline is *stuck*: the HUD says so in
red ("STUCK: inference 12 s", :meth:`Health.status_text`), the log gets the stuck thread's stack,
and the :class:`Watchdog` thread stops feeding systemd's watchdog, so systemd restarts the service
``WatchdogSec`` later. Outside systemd nothing is killed: the alarm and the report say it.

Progress means the loop went round, not that it produced anything: an unplugged probe is not a
stuck stage (acquisition still loops, reading with a timeout, while the link reconnects in its own
thread), nor is a model gated off, nor an outbox with nothing to send. Stuck is a call that does
not return: a model run, a device read, a window or file write, a handler, a network call.

``beat`` is one monotonic read and a dict store, no lock: it is meant for every frame.

    health = Health()
    for stage, deadline_s in Deadlines().for_pipeline(read_timeout_s=0.1, ...).items():
        health.register(stage, deadline_s)
    with health.notifier():          # READY=1, WATCHDOG=1 while all progress, STOPPING=1 at the end
        ...                          # each stage: health.beat("inference") every time round
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.runtime.notify import Notify

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # monotonic seconds
# Beyond the source's read timeout before acquisition counts as stuck: a UVC read can block in
# OpenCV's V4L2 backend for its own 10 s select timeout before it fails (and the source retries).
READ_MARGIN_S = 12.0


@dataclass(frozen=True)
class Deadlines:
    """How long each stage may go without its loop going round, in seconds."""

    acquisition_s: float = 15.0  # see READ_MARGIN_S; a probe's read returns every read timeout
    inference_s: float = 10.0  # one model call (a chain run); frame models take milliseconds
    display_s: float = 10.0  # drawing and the sinks (a window, a video file, snapshots)
    results_s: float = 30.0  # one handler call: a JSONL line, an outbox commit on a slow card
    uplink_s: float = 120.0  # one uplink step: a connect (DNS, TCP, TLS) is bounded by its timeouts

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"watchdog deadline {f.name} must be above 0 s, not {value!r}")

    def for_pipeline(
        self, *, read_timeout_s: float, inference_waits: bool, display_waits: bool
    ) -> dict[str, float]:
        """The pipeline's four stages. Acquisition's deadline includes the waits it makes by design:
        for inference to take the last frame (``inference_waits``: the EVERY policy) and for room
        in the display queue (``display_waits``: the BLOCK display policy). A stage those waits
        hang on is stuck within its own, shorter deadline, and is named first."""
        acquisition = max(self.acquisition_s, read_timeout_s + READ_MARGIN_S)
        if inference_waits:
            acquisition += self.inference_s
        if display_waits:
            acquisition += self.display_s
        return {
            "acquisition": acquisition,
            "inference": self.inference_s,
            "display": self.display_s,
            "results": self.results_s,
        }


@dataclass
class _Episode:
    """A stage's time stuck: how often, the longest, and whether it is stuck now."""

    times: int = 0
    longest_s: float = 0.0
    ongoing: bool = False


class Health:
    """The stages' last progress and deadlines. Thread-safe: beats come from every stage's thread,
    checks from the watchdog's and the display's (the HUD)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # registration and episodes; never taken by beat()
        self._deadlines: dict[str, float] = {}  # the stages watched now
        self._registered: dict[str, float] = {}  # every stage watched in this run, for the report
        self._progress: dict[str, Callable[[], float | None]] = {}
        self._since: dict[str, float] = {}  # registration time: progress counts from there
        self._last: dict[str, float] = {}
        self._threads: dict[str, int] = {}  # the thread that beats each stage, for its stack
        self._episodes: dict[str, _Episode] = {}

    # -- the stages' side ------------------------------------------------------------------------
    def register(
        self, stage: str, deadline_s: float, *, progress: Callable[[], float | None] | None = None
    ) -> None:
        """Watch ``stage`` from now on. ``progress``: for a part that cannot call beat() (one in a
        lower layer, like the uplink), a callable giving the time its loop last went round on this
        Health's clock (None: not yet)."""
        if not deadline_s > 0:
            raise ValueError(f"watchdog deadline of stage {stage!r} must be above 0 s, not {deadline_s!r}")
        with self._lock:
            self._deadlines[stage] = self._registered[stage] = deadline_s
            self._since[stage] = self._clock()
            self._last.pop(stage, None)
            self._threads.pop(stage, None)
            if progress is not None:
                self._progress[stage] = progress
            else:
                self._progress.pop(stage, None)
            self._episodes.setdefault(stage, _Episode())

    def beat(self, stage: str) -> None:
        """``stage``'s loop went round. Cheap and lock-free; a stage not registered is ignored."""
        self._last[stage] = self._clock()
        if stage not in self._threads:
            self._threads[stage] = threading.get_ident()

    def done(self, stage: str) -> None:
        """``stage`` has ended (its loop returned): no longer watched."""
        with self._lock:
            self._deadlines.pop(stage, None)
            self._progress.pop(stage, None)
            ep = self._episodes.get(stage)
            if ep is not None:
                ep.ongoing = False

    # -- questions -------------------------------------------------------------------------------
    def silences(self, now: float | None = None) -> list[tuple[str, float, float]]:
        """``(stage, seconds since progress, deadline)`` for every watched stage."""
        now = self._clock() if now is None else now
        with self._lock:
            watched = list(self._deadlines.items())
            pulls = dict(self._progress)
        out = []
        for stage, deadline in watched:
            last = max(self._since.get(stage, now), self._last.get(stage, -1.0))
            pull = pulls.get(stage)
            if pull is not None:
                last = max(last, self._pulled(stage, pull))
            out.append((stage, max(0.0, now - last), deadline))
        return out

    def stuck(self, now: float | None = None) -> list[tuple[str, float]]:
        """``(stage, seconds since progress)`` for each stage past its deadline, longest first."""
        late = [(s, age) for s, age, deadline in self.silences(now) if age > deadline]
        return sorted(late, key=lambda x: -x[1])

    def status_text(self) -> str | None:
        """For the HUD in red (a ``runtime.ports.AlarmReporter``): None while every stage progresses."""
        return _stuck_text(self.stuck())

    def failure(self, now: float | None = None) -> str | None:
        """Why the run failed, for its report, when a stage is stuck now (at its end, say)."""
        stuck = self.stuck(now)
        if not stuck:
            return None
        with self._lock:
            deadlines = dict(self._deadlines)
        return "; ".join(
            f"{s} made no progress for {age:.1f} s (deadline {deadlines.get(s, 0):g} s)" for s, age in stuck
        )

    def check(self, now: float | None = None) -> list[tuple[str, float]]:
        """stuck(), and keep the episodes: log a stage that gets stuck (with its thread's stack) or
        progresses again. Called by the watchdog thread about once a second."""
        now = self._clock() if now is None else now
        stuck = self.stuck(now)
        stuck_now = dict(stuck)
        with self._lock:
            episodes = list(self._episodes.items())
        for stage, ep in episodes:
            age = stuck_now.get(stage)
            if age is None:
                if ep.ongoing:
                    ep.ongoing = False
                    log.warning("watchdog: %s progresses again after %.1f s", stage, ep.longest_s)
                continue
            ep.longest_s = max(ep.longest_s, age)
            if not ep.ongoing:
                ep.ongoing = True
                ep.times += 1
                log.error(
                    "watchdog: %s made no progress for %.1f s (deadline %g s)%s",
                    stage, age, self._deadlines.get(stage, 0), self._stack(stage),
                )  # fmt: skip
        return stuck

    def report(self, now: float | None = None) -> dict[str, Any]:
        """For the run report: the deadlines, and each stage that was stuck (how often, how long)."""
        self.check(now)
        with self._lock:
            deadlines = dict(self._registered)
            episodes = {s: dataclasses.replace(ep) for s, ep in self._episodes.items()}
        return {
            "deadlines_s": deadlines,
            "stuck": {
                s: {"times": ep.times, "longest_s": round(ep.longest_s, 1), "at_end": ep.ongoing}
                for s, ep in sorted(episodes.items())
                if ep.times
            },
        }

    def notifier(self, notify: Notify | None = None, *, check_s: float = 1.0) -> Watchdog:
        """The watchdog thread for this Health, as a context manager (``with health.notifier():``);
        systemd's channel from the environment unless ``notify`` is given."""
        return Watchdog(self, Notify.from_env() if notify is None else notify, check_s=check_s)

    # -- helpers ---------------------------------------------------------------------------------
    def _pulled(self, stage: str, pull: Callable[[], float | None]) -> float:
        try:
            t = pull()
        except Exception:  # a broken progress callable must not take the checks down with it
            log.exception("watchdog: reading the progress of %s failed", stage)
            return -1.0
        return -1.0 if t is None else float(t)

    def _stack(self, stage: str) -> str:
        ident = self._threads.get(stage)
        frame = sys._current_frames().get(ident) if ident is not None else None
        if frame is None:
            return ""
        return "; where its thread is:\n" + "".join(traceback.format_stack(frame)).rstrip()


def _stuck_text(stuck: list[tuple[str, float]]) -> str | None:
    if not stuck:
        return None
    return "STUCK: " + ", ".join(f"{s} {int(age)} s" for s, age in stuck)  # whole seconds, as a timer


class Watchdog:
    """The thread that feeds systemd's watchdog (WATCHDOG=1, every half ``WatchdogSec``) only while
    every stage progresses, and keeps STATUS= current. READY=1 at start, STOPPING=1 at stop.

    Without a systemd watchdog it still checks (the log names a stuck stage and its stack); it
    never kills the process itself.
    """

    def __init__(self, health: Health, notify: Notify, *, check_s: float = 1.0) -> None:
        self.health = health
        self.notify = notify
        self.ping_s = notify.watchdog_s / 2 if notify.watchdog_s else None
        self.check_s = min(check_s, self.ping_s) if self.ping_s else check_s
        self.pings = 0
        self._last_ping: float | None = None
        self._was_stuck = False
        self._status: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self, now: float | None = None) -> None:
        """One check: STATUS= when it changed; WATCHDOG=1 when due and nothing is stuck."""
        now = self.health._clock() if now is None else now
        stuck = self.health.check(now)
        status = _stuck_text(stuck) or "running"
        if status != self._status:
            self._status = status
            self.notify.status(status)
        if stuck:
            self._was_stuck = True
            return
        due = self._last_ping is None or now - self._last_ping >= (self.ping_s or 0)
        if self.ping_s is not None and (due or self._was_stuck):  # fed again at once on recovery
            self.notify.watchdog()
            self.pings += 1
            self._last_ping = now
        self._was_stuck = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._status = "running"
        self.notify.ready(self._status)
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()
        if self.notify.enabled:
            log.info(
                "watchdog: notifying systemd%s", f", ping every {self.ping_s:g} s" if self.ping_s else ""
            )

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(5.0)
        self._thread = None
        self.notify.stopping(self.health.failure() or "stopping")

    def __enter__(self) -> Watchdog:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while True:
            try:
                self.step()
            except Exception:  # keep checking; a step that keeps failing stops the pings: fail safe
                log.exception("watchdog: check failed")
            if self._stop.wait(self.check_s):
                return
