"""Failures per stage: counted, logged once in full, alarmed on the HUD, and stopped past a budget.

Every stage of a run (acquisition, inference, the overlay, each display sink, each result handler)
reports each attempt to one :class:`StageMonitor`: ``ok(stage)`` or ``failed(stage, exc, doing)``.
The monitor turns that into the run's behaviour under repeated faults, the same for every stage:

- the first failure of a streak is logged with its traceback; the rest of the streak is summarised
  at most once every ``summary_every_s`` (never a traceback per frame); a recovery is logged;
- ``alarm_after`` failures in a row raise the HUD alarm (``alarm_text``);
- a streak of ``max_consecutive`` failures, or one spanning ``budget_s`` seconds, is over budget:
  ``over_budget`` is set and ``on_over_budget`` called once, and the runtime stops the run with
  exit "failed";
- a full disk (ENOSPC, EFBIG, EDQUOT) on an expendable output (the recording, snapshots, the
  results file) is not a failure to retry: ``disk_full`` stops those outputs and keeps the rest.

Each stage's record is written by the thread that runs the stage; the HUD, the report and a
watchdog read them (``stages()``: attempts, successes, failures in a row, last success time).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def disk_full_error(exc: BaseException | None) -> OSError | None:
    """The OSError saying the disk (or a file size limit) is full: ``exc`` or one it was raised from."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def is_disk_full(exc: BaseException | None) -> bool:
    return disk_full_error(exc) is not None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass(frozen=True)
class FailureBudget:
    """How much failing a stage may do ([health] in the config). 0 turns a limit off."""

    alarm_after: int = 3
    max_consecutive: int = 150
    budget_s: float = 10.0
    summary_every_s: float = 5.0


@dataclass(frozen=True)
class StageFailure:
    """Why a run stopped: the stage over its budget, or one that never once succeeded."""

    stage: str
    count: int  # failures in a row
    seconds: float  # from the first to the last of them
    last_error: str
    why: str  # "over budget" limit, or "never succeeded"
    text: str | None = None  # the whole reason, from another judge of a stage (a watchdog: stuck)

    def describe(self) -> str:
        if self.text is not None:
            return self.text
        return (
            f"{self.stage} failed {self.count} times in a row over {self.seconds:.1f} s ({self.why}); "
            f"last error: {self.last_error}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "last_error": self.last_error,
            "why": self.why,
        }


class StageHealth:
    """One stage's record. Written by the stage's own thread only; read by anyone."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.successes = 0
        self.failures = 0
        self.consecutive = 0  # failures since the last success
        self.first_failed_ns = 0  # of the current streak
        self.last_failed_ns = 0
        self.last_ok_ns = 0  # the stage's last progress (0: none yet)
        self.last_error: str | None = None
        self.stopped: str | None = None  # why the stage was switched off (disk full)
        self._logged_ns = 0
        self._traced: set[type] = set()  # kinds of error already logged with a traceback

    @property
    def streak_s(self) -> float:
        return (self.last_failed_ns - self.first_failed_ns) / 1e9 if self.consecutive else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "successes": self.successes,
            "failures": self.failures,
            "failing_in_a_row": self.consecutive,
            "last_error": self.last_error,
            "stopped": self.stopped,
        }


class StageMonitor:
    """The run's stages and what their failures do (module docstring). Thread-safe."""

    def __init__(
        self,
        budget: FailureBudget | None = None,
        *,
        on_over_budget: Callable[[StageFailure], None] | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.budget = budget or FailureBudget()
        self.on_over_budget = on_over_budget
        self._clock = clock
        self._lock = threading.Lock()
        self._stages: dict[str, StageHealth] = {}
        self.over_budget: StageFailure | None = None
        self.disk_full: str | None = None  # what filled up, once it did
        self.notes: list[str] = []  # degraded but running: a display fallback, outputs stopped

    def stage(self, name: str) -> StageHealth:
        with self._lock:
            health = self._stages.get(name)
            if health is None:
                health = self._stages[name] = StageHealth(name)
            return health

    def stages(self) -> dict[str, StageHealth]:
        with self._lock:
            return dict(self._stages)

    # -- what the stages report ------------------------------------------------------------------
    def ok(self, name: str) -> None:
        """One attempt of stage ``name`` succeeded. Cheap: called per frame per stage."""
        health = self._stages.get(name) or self.stage(name)
        health.successes += 1
        health.last_ok_ns = self._clock()
        if health.consecutive:
            if health.consecutive >= self.budget.alarm_after:  # only an alarm raised is cleared aloud
                log.warning(
                    "%s recovered after %d failures in a row (%.1f s)",
                    name, health.consecutive, health.streak_s,
                )  # fmt: skip
            health.consecutive = 0

    def failed(self, name: str, exc: BaseException, doing: str = "") -> bool:
        """One attempt of stage ``name`` failed with ``exc`` (``doing``: on what, for the log).

        Returns True when this failure put the stage over its budget (the run is being stopped).
        """
        health = self.stage(name)
        now = self._clock()
        health.failures += 1
        health.consecutive += 1
        if health.consecutive == 1:
            health.first_failed_ns = now
        health.last_failed_ns = now
        health.last_error = _short(exc)
        where = f" ({doing})" if doing else ""
        b = self.budget
        if type(exc) not in health._traced:  # each kind of error in full once, then summaries
            health._traced.add(type(exc))
            health._logged_ns = now
            log.error("%s failed%s: %s", name, where, health.last_error, exc_info=exc)
        elif now - health._logged_ns >= b.summary_every_s * 1e9:
            health._logged_ns = now
            log.error(
                "%s: %d failures in a row over %.1f s (%d in all); last%s: %s",
                name, health.consecutive, health.streak_s, health.failures, where, health.last_error,
            )  # fmt: skip
        if health.consecutive == b.alarm_after:
            log.error("%s keeps failing (%d in a row): HUD alarm raised", name, health.consecutive)
        return self._check_budget(health)

    def output_failed(self, name: str, part: object, exc: BaseException, doing: str = "") -> bool:
        """An output (a sink, a result handler) failed: a full disk under an expendable one stops
        the expendable outputs (False); anything else counts as a failure of stage ``name`` (True)."""
        if is_disk_full(exc) and getattr(part, "expendable", False):
            self.full(name, exc)
            return False
        self.failed(name, exc, doing)
        return True

    def _check_budget(self, health: StageHealth) -> bool:
        b = self.budget
        limits = []
        if b.max_consecutive and health.consecutive >= b.max_consecutive:
            limits.append(f"max_consecutive_failures = {b.max_consecutive}")
        if b.budget_s and health.consecutive >= 2 and health.streak_s >= b.budget_s:
            limits.append(f"failure_budget_s = {b.budget_s:g}")
        if not limits:
            return False
        failure = StageFailure(
            health.name, health.consecutive, health.streak_s, health.last_error or "?",
            f"over budget: {' and '.join(limits)}",
        )  # fmt: skip
        return self.fail(failure)

    def fail(self, failure: StageFailure) -> bool:
        """Stop the run as failed for ``failure`` (the first one only; True when it was). Also for
        other judges of a stage, such as a watchdog that finds one stuck."""
        with self._lock:
            if self.over_budget is not None:
                return False
            self.over_budget = failure
        log.critical("stopping the run: %s", failure.describe())
        if self.on_over_budget is not None:
            self.on_over_budget(failure)
        return True

    def never_succeeded(self) -> StageFailure | None:
        """At the end of a run: the first stage that failed ``alarm_after`` times and never worked.

        A run that never wrote its recording, or never got a result, did not complete, however short.
        """
        for health in self.stages().values():
            never = health.successes == 0 and health.stopped is None
            if never and health.failures >= self.budget.alarm_after:
                return StageFailure(
                    health.name, health.consecutive, health.streak_s, health.last_error or "?",
                    "never succeeded",
                )  # fmt: skip
        return None

    def stop_output(self, name: str, why: str) -> None:
        """Stage ``name`` is switched off for the rest of the run (an expendable output, disk full)."""
        health = self.stage(name)
        if health.stopped is None:
            health.stopped = why
            health.consecutive = 0
            self.note(f"{name} stopped: {why}")

    def full(self, name: str, exc: BaseException) -> None:
        """The disk under stage ``name`` is full: every expendable output is to stop (the runtime
        closes them, each on its own thread); what must be kept (the outbox) goes on."""
        why = _short(disk_full_error(exc) or exc)
        with self._lock:
            first = self.disk_full is None
            if first:
                self.disk_full = f"{name}: {why}"
        if first:
            log.critical(
                "DISK FULL writing %s (%s; %s): stopping the recording, snapshots and the results "
                "file; the outbox and the live display go on", name, why, exc,
            )  # fmt: skip

    def note(self, text: str) -> None:
        with self._lock:
            if text not in self.notes:
                self.notes.append(text)

    # -- what the HUD and the report read --------------------------------------------------------
    def alarm_text(self) -> str | None:
        """The HUD's red line: a full disk, and every stage failing ``alarm_after`` times in a row."""
        parts = ["DISK FULL: recording stopped"] if self.disk_full else []
        for health in self.stages().values():
            if health.consecutive >= self.budget.alarm_after and health.stopped is None:
                parts.append(f"{health.name.upper()} FAILING ({health.consecutive}x): {health.last_error}")
        return " | ".join(parts)[:160] or None

    def report(self) -> dict[str, Any]:
        b = self.budget
        return {
            "budget": {
                "alarm_after_failures": b.alarm_after,
                "max_consecutive_failures": b.max_consecutive,
                "failure_budget_s": b.budget_s,
            },
            "stages": {name: h.to_dict() for name, h in self.stages().items()},
            "disk_full": self.disk_full,
            "notes": list(self.notes),
        }


def stop_expendable(parts: list[tuple[str, Any]], monitor: StageMonitor) -> list[tuple[str, Any]]:
    """The disk is full: close the expendable ``(stage, part)`` pairs, return those left running."""
    kept = []
    for name, part in parts:
        if not getattr(part, "expendable", False):
            kept.append((name, part))
            continue
        monitor.stop_output(name, f"disk full ({monitor.disk_full})")
        try:
            part.close()
        except Exception as exc:  # a full disk fails the last flush too; the part is stopped anyway
            log.warning("closing %s after the disk filled: %s", name, exc)
    return kept
