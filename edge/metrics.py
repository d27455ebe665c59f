"""Counters, rate meters and latency percentiles for the run report, the HUD and the bench."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

PERCENTILES = (50, 95, 99)


class RateMeter:
    """Events per second over a sliding window of recent timestamps (for the HUD)."""

    def __init__(self, window_s: float = 2.0, maxlen: int = 512) -> None:
        self._window_ns = int(window_s * 1e9)
        self._times: deque[int] = deque(maxlen=maxlen)

    def tick(self, t_ns: int | None = None) -> None:
        self._times.append(time.monotonic_ns() if t_ns is None else t_ns)

    def rate(self, now_ns: int | None = None) -> float:
        now = time.monotonic_ns() if now_ns is None else now_ns
        times = self._times
        while times and now - times[0] > self._window_ns:
            times.popleft()
        if len(times) < 2:
            return 0.0
        span = times[-1] - times[0]
        return (len(times) - 1) * 1e9 / span if span > 0 else 0.0


class LatencyRecorder:
    """Milliseconds per named stage. Appends are O(1); percentiles computed once at the end."""

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._values.setdefault(stage, []).append(ms)

    def values(self, stage: str) -> list[float]:
        with self._lock:
            return list(self._values.get(stage, ()))

    def recent_median(self, stage: str, n: int = 30) -> float | None:
        with self._lock:
            vals = self._values.get(stage)
            if not vals:
                return None
            return float(np.median(vals[-n:]))

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            items = {k: list(v) for k, v in self._values.items()}
        return {stage: summarize(vals) for stage, vals in sorted(items.items())}


def summarize(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    arr = np.asarray(values, np.float64)
    out = {"count": float(arr.size), "mean": float(arr.mean()), "max": float(arr.max())}
    for p, v in zip(PERCENTILES, np.percentile(arr, PERCENTILES)):
        out[f"p{p}"] = float(v)
    return out


@dataclass
class Counters:
    """Frame and result counts. Each field is written by one thread only, so no lock is needed."""

    acquired: int = 0
    inferred: int = 0
    skipped: int = 0  # frames inference never saw (a newer one replaced them)
    displayed: int = 0
    display_dropped: int = 0  # only with display_policy = "drop_oldest"
    gated: int = 0  # detection not run: quality not ok
    results: int = 0
    inference_errors: int = 0
    display_errors: int = 0
    source_errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d.update(self.extra)
        return d
