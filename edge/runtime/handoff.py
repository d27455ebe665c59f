"""The hand-over of frames from acquisition to inference, and the policy that governs it."""

from __future__ import annotations

import threading

from edge.frames import Frame


def resolve_policy(policy: str, source: object) -> str:
    """ "auto": skip frames only where the source runs on its own clock (a probe, a paced replay)."""
    if policy != "auto":
        return policy
    info = getattr(source, "info", None)
    return "latest" if getattr(info, "realtime", True) else "every"


class LatestSlot:
    """A one-frame mailbox between acquisition and inference.

    "latest" (live use): put() replaces what the reader has not taken yet, and counts it.
    "every" (offline analysis of a recording): put() waits until the reader has taken the
    previous frame, so every frame is inferred and acquisition slows to inference's pace.
    """

    def __init__(self, policy: str = "latest") -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self._wait = policy == "every"
        self.replaced = 0

    def put(self, frame: Frame, stop: threading.Event | None = None) -> None:
        with self._cond:
            while self._wait and self._frame is not None and not self._closed:
                if stop is not None and stop.is_set():
                    return
                self._cond.wait(0.05)
            if self._frame is not None:
                self.replaced += 1
            self._frame = frame
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, timeout: float) -> Frame | None:
        """The newest frame, or None on timeout or when closed and empty."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            if self._wait and frame is not None:
                self._cond.notify_all()  # the waiting put() may go on
            return frame

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and self._frame is None
