"""CPU time per frame, by stage: what the runtime costs a small box, not how long a frame waits.

Wall-clock latency says what a user feels; CPU time says how much of a Jetson-class core each
stage takes, and it holds still when other jobs share the machine. Measured three ways, all of
this process only (a child process, the virtual probe among them, is never counted):

- the runtime's own loops time their work with ``time.thread_time_ns`` in their own thread
  (acquisition, inference, overlay, the sinks' ``show``, the result handlers); the model sessions
  are wrapped once (:func:`meter_sessions`) so that their CPU time is split from pre/post;
- threads the runtime does not drive itself (the probe link's reader, the recording's encoder
  and file copy, the imaging-area refit) are read by name from ``/proc/self/task/<tid>/schedstat``
  (the kernel's per-thread run time in ns), sampled twice a second and at the end;
- child processes that do the runtime's work (the recording's encoder, edge.render.encoder) are
  read from /proc and reported apart (``child_processes_ms_per_frame``), never folded in nor left
  out; the virtual probe, a device's stand-in, is not the runtime's and is not counted at all;
- the process total (``os.times``: user + system, children excluded) over the same window, so
  ``other`` (the total less every stage) holds what no stage claims: the watchdog, the memory
  sampler, the uplink, ONNX Runtime pool threads when ``[inference] threads`` > 1, a thread that
  ended between two samples.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

STAGES = ("acquisition", "pre_post", "model", "overlay", "recording", "display", "results", "other")
# Threads sampled by name (prefix): whose work they are.
THREAD_STAGES = (
    ("probe-reader", "acquisition"),
    ("probe-supervisor", "acquisition"),
    ("video-writer", "recording"),
    ("video-file", "recording"),
    ("video-encoder", "recording"),
    ("sector-refit", "pre_post"),
)
_TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 1e7


def thread_cpu_ns(native_id: int) -> int | None:
    """CPU time of one thread of this process in ns (None once it has ended, or off Linux)."""
    try:
        with open(f"/proc/self/task/{native_id}/schedstat", "rb") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    try:  # no schedstat in this kernel: utime + stime in clock ticks
        with open(f"/proc/self/task/{native_id}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) * _TICK_NS)
    except (OSError, ValueError, IndexError):
        return None


def process_cpu_ns() -> int:
    """User + system time of this process (every thread, no child process), in ns."""
    t = os.times()
    return round((t.user + t.system) * 1e9)


def stage_of_thread(name: str) -> str | None:
    return next((stage for prefix, stage in THREAD_STAGES if name.startswith(prefix)), None)


class TimedSession:
    """A model session whose ``run`` adds its thread CPU time to ``cpu_ns`` (read, never reset)."""

    def __init__(self, session: Any) -> None:
        self.inner = session
        self.cpu_ns = 0

    def run(self, feeds: Any) -> Any:
        t0 = time.thread_time_ns()
        try:
            return self.inner.run(feeds)
        finally:
            self.cpu_ns += time.thread_time_ns() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def meter_sessions(models: Iterable[Any]) -> list[TimedSession]:
    """Wrap each model's ``session`` once (a second call finds the wrapper) and return the meters.
    Models without a ``session`` attribute (test doubles) are left alone."""
    meters = []
    for model in models:
        session = getattr(model, "session", None)
        if session is None:
            continue
        if not isinstance(session, TimedSession):
            session = TimedSession(session)
            model.session = session
        meters.append(session)
    return meters


class CpuLedger:
    """CPU nanoseconds per stage over one run (``start`` .. ``stop``), and per frame in ``report``.

    ``add`` may be called from any thread; the sampled threads are read by a thread of its own.
    """

    def __init__(
        self,
        sessions: Iterable[TimedSession] = (),
        every_s: float = 0.5,
        children: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        """``children``: the CPU ns so far of child processes doing the runtime's work, by name."""
        self._sessions = list(sessions)
        self._children = children or dict
        self._children0: dict[str, int] = {}
        self._children1: dict[str, int] = {}
        self._every_s = every_s
        self._lock = threading.Lock()
        self._ns: dict[str, int] = defaultdict(int)
        self._first: dict[int, int] = {}  # sampled thread -> its CPU time at start (0 if born later)
        self._last: dict[int, tuple[str, int]] = {}  # sampled thread -> (name, latest CPU time)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = self._t1 = 0
        self._wall0 = self._wall1 = 0
        self._model0 = 0

    def add(self, stage: str, ns: int) -> None:
        with self._lock:
            self._ns[stage] += ns

    def start(self) -> None:
        self._wall0 = time.monotonic_ns()
        self._t0 = process_cpu_ns()
        self._model0 = self.model_ns()
        self._children0 = self._children()
        for t in threading.enumerate():
            if t.native_id is not None and stage_of_thread(t.name):
                ns = thread_cpu_ns(t.native_id)
                if ns is not None:
                    self._first[t.native_id] = ns
                    self._last[t.native_id] = (t.name, ns)
        self._thread = threading.Thread(target=self._loop, name="cpu-ledger", daemon=True)
        self._thread.start()

    def model_ns(self) -> int:
        return sum(s.cpu_ns for s in self._sessions)

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            self.sample()

    def sample(self) -> None:
        for t in threading.enumerate():
            if t.native_id is None or stage_of_thread(t.name) is None:
                continue
            ns = thread_cpu_ns(t.native_id)
            if ns is not None:
                self._last[t.native_id] = (t.name, ns)

    def stop(self) -> None:
        """End the window: the last samples, the process total."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.sample()
        self._children1 = self._children()
        self._t1 = process_cpu_ns()
        self._wall1 = time.monotonic_ns()

    def stages_ns(self) -> dict[str, int]:
        with self._lock:
            out = dict.fromkeys(STAGES, 0) | dict(self._ns)
        model = self.model_ns() - self._model0
        out["model"] += model
        out["pre_post"] -= model  # the inference loop's own timing holds the sessions' too
        for tid, (name, ns) in self._last.items():
            stage = stage_of_thread(name)
            if stage is not None:
                out[stage] += ns - self._first.get(tid, 0)
        total = (self._t1 or process_cpu_ns()) - self._t0
        out["other"] += total - sum(out.values())
        out["total"] = total
        return out

    def threads_ms(self) -> dict[str, float]:
        """The sampled threads' CPU time in the window, by name (ms)."""
        by: dict[str, float] = defaultdict(float)
        for tid, (name, ns) in self._last.items():
            by[name] += (ns - self._first.get(tid, 0)) / 1e6
        return {k: round(v, 1) for k, v in sorted(by.items())}

    def report(self, frames: int) -> dict[str, Any]:
        """Milliseconds of CPU per frame by stage (``frames``: acquired), the total, and how."""
        ns = self.stages_ns()
        n = max(frames, 1)
        wall_s = max((self._wall1 or time.monotonic_ns()) - self._wall0, 1) / 1e9
        kids = {k: v - self._children0.get(k, 0) for k, v in self._children1.items()}
        kids_ms = {k: round(v / n / 1e6, 3) for k, v in kids.items()}
        return {
            "frames": frames,
            "ms_per_frame": {k: round(v / n / 1e6, 3) for k, v in ns.items()},
            "child_processes_ms_per_frame": kids_ms,
            "with_children_ms_per_frame": round((ns["total"] + sum(kids.values())) / n / 1e6, 3),
            "total_ms": round(ns["total"] / 1e6, 1),
            "cores_used": round(ns["total"] / 1e9 / wall_s, 3),  # average share of one core
            "sampled_threads_ms": self.threads_ms(),
            "excludes": "child processes (the virtual probe) and other processes",
        }
