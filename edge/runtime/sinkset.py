"""A run's display sinks, each a stage of its own: one failing sink never costs the others.

The sinks are opened on the display thread at the first frame's size (GUI windows must be driven
by the thread that made them; a video file needs the real size and rate). Each sink's opening and
each frame it takes is reported to the StageMonitor under the sink's name ("window", "video"...).
A window that cannot open, or keeps failing, is replaced once by the fallback (the overlay video),
and that is noted for the log, the HUD and the report. A full disk under an expendable sink (the
video, snapshots) closes every expendable sink; the window goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from edge.render.display import Sink
from edge.runtime.cpu import CpuLedger
from edge.runtime.failures import StageMonitor, stop_expendable
from edge.runtime.ports import stage_names

log = logging.getLogger(__name__)


class SinkSet:
    def __init__(
        self,
        sinks: Sequence[Sink],
        stages: StageMonitor,
        fallback: Callable[[], Sink | None] | None = None,
        *,
        cpu: CpuLedger | None = None,
    ) -> None:
        """``fallback``: makes the sink that replaces a lost window (None: nothing replaces it).
        ``cpu``: where each sink's ``show`` time goes ("recording" for a video, else "display")."""
        self.stages = stages
        self.fallback = fallback
        self.parts: list[tuple[str, Sink]] = list(zip(stage_names(sinks, "sink"), sinks))
        self._size: tuple[int, int, float | None] | None = None
        self._expendable_stopped = False
        self.cpu = cpu
        self.show_ns = 0  # CPU time in the sinks' show(), on the display thread

    @property
    def sinks(self) -> list[Sink]:
        return [s for _, s in self.parts]

    @property
    def opened(self) -> bool:
        return self._size is not None

    def open(self, width: int, height: int, fps: float | None) -> None:
        self._size = (width, height, fps)
        for name, sink in list(self.parts):
            self._open(name, sink)

    def _open(self, name: str, sink: Sink) -> None:
        assert self._size is not None
        try:
            sink.open(*self._size)
        except Exception as exc:
            self._failed(name, sink, exc, "opening")

    def show(self, image: np.ndarray, seq: int) -> tuple[int, int]:
        """Hand ``image`` to every sink; returns how many took it and how many failed."""
        if self.stages.disk_full and not self._expendable_stopped:
            self._expendable_stopped = True
            self.parts = stop_expendable(self.parts, self.stages)
        shown = failed = 0
        for name, sink in list(self.parts):
            t0 = time.thread_time_ns()
            try:
                sink.show(image, seq)
            except Exception as exc:
                failed += 1
                self._failed(name, sink, exc, f"frame {seq}")
            else:
                self.stages.ok(name)
                shown += 1
            if self.cpu is not None:
                spent = time.thread_time_ns() - t0
                self.show_ns += spent
                self.cpu.add("recording" if sink.name == "video" else "display", spent)
        return shown, failed

    def hold(self, image: np.ndarray, seq: int) -> None:
        """Show ``image`` again on the windows only (a still held on screen: the window stays drawn and
        answers q, Esc and its close button; a recording does not repeat the frame)."""
        for name, sink in list(self.parts):
            if sink.name != "window":
                continue
            try:
                sink.show(image, seq)
            except Exception as exc:
                self._failed(name, sink, exc, f"holding frame {seq}")

    @property
    def holds(self) -> bool:
        """Whether a window is among the sinks (only a window can hold a still for the eye)."""
        return any(s.name == "window" for s in self.sinks)

    def wants_stop(self) -> bool:
        return any(s.wants_stop() for s in self.sinks)

    def close(self) -> None:
        """Close every sink, the fallback too; a sink that fails to close is logged, not raised."""
        for name, sink in self.parts:
            try:
                sink.close()
            except Exception as exc:
                log.error("closing %s: %s", name, exc)

    def _failed(self, name: str, sink: Sink, exc: Exception, doing: str) -> None:
        if not self.stages.output_failed(name, sink, exc, doing):
            return  # a full disk under an expendable sink: stopped, not failing
        lost = doing == "opening" or self.stages.stage(name).consecutive >= self.stages.budget.alarm_after
        if sink.name == "window" and lost and self.fallback is not None:
            self._replace(name, sink, exc)

    def _replace(self, name: str, sink: Sink, exc: Exception) -> None:
        make, self.fallback = self.fallback, None
        assert make is not None
        try:
            sink.close()
        except Exception as close_exc:
            log.debug("closing the lost window: %s", close_exc)
        self.parts = [(n, s) for n, s in self.parts if s is not sink]
        replacement = make()
        path = getattr(replacement, "path", replacement)
        what = f"recording the overlay ({path})" if replacement else "not shown"
        self.stages.stop_output(name, f"no display ({exc}); {what} instead")
        log.warning("the window is lost (%s): %s instead", exc, what)
        if replacement is None:
            return
        new_name = stage_names([*self.sinks, replacement], "sink")[-1]
        self.parts.append((new_name, replacement))
        if self._size is not None:
            self._open(new_name, replacement)
