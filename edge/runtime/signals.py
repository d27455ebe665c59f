"""SIGTERM and SIGINT as a request to stop: the run ends at once, and its report is still written.

Light on purpose (no OpenCV, no ONNX Runtime): ``edge run`` installs the handlers before it imports
the runtime, so a SIGTERM from systemd during the seconds of start-up (imports, a probe's handshake,
model loading) is not the default action, which would end the process with no report. Until the
pipeline exists the request is kept, and the run stops as soon as it starts.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    def stop(self, reason: str) -> None: ...


class RunStopper:
    """What a signal stops: the pipeline once it is attached; before that, the request is kept."""

    def __init__(self) -> None:
        self.target: Stoppable | None = None
        self.reason: str | None = None

    def stop(self, reason: str) -> None:
        self.reason = self.reason or reason
        if self.target is not None:
            self.target.stop(reason)

    def attach(self, target: Stoppable) -> None:
        self.target = target
        if self.reason is not None:
            target.stop(self.reason)


@contextmanager
def stop_on_signals(target: Stoppable) -> Iterator[None]:
    """SIGINT/SIGTERM call ``target.stop("received SIGTERM")``; a second one of the same falls back
    to the default, for a run that does not stop. Only from the main thread (elsewhere: nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        log.info("received %s: stopping", name)
        target.stop(f"received {name}")
        signal.signal(signum, signal.SIG_DFL)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
