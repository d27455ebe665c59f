"""The channels between the runtime's threads, and the policies that govern them.

- :class:`FrameQueue`: acquisition to display, bounded; ``DisplayPolicy`` says what a full
  queue does (acquisition waits, or the oldest frame is dropped and counted).
- :class:`LatestSlot`: acquisition to inference, one frame; ``InferencePolicy`` says whether a
  new frame replaces one not yet taken (counted as skipped) or waits for it to be taken.
- :class:`ResultBoard`: inference to display; the result each frame is drawn with.
- :class:`ResultChannel`: inference to the result handlers, (frame, result) pairs; results are
  never dropped, frames are let go when the handlers fall far behind.

Policies are ``str`` Enums so the config's strings and the report's ``inference_policy_used``
stay plain strings.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from enum import Enum
from typing import Generic, TypeVar

from edge.frames import Frame
from edge.results import Result
from edge.sources.base import Source

log = logging.getLogger(__name__)
T = TypeVar("T")


class InferencePolicy(str, Enum):
    LATEST = "latest"  # live use: inference takes the newest frame, skipped ones are counted
    EVERY = "every"  # a recording analysed: every frame inferred, acquisition slows to inference
    AUTO = "auto"  # LATEST for live and paced sources, EVERY for a replay run as fast as possible


class DisplayPolicy(str, Enum):
    BLOCK = "block"  # acquisition waits for the display: every frame shown (and recorded)
    DROP_OLDEST = "drop_oldest"  # the display stays live; what it dropped is counted


def resolve_policy(policy: str | InferencePolicy, source: Source) -> InferencePolicy:
    """AUTO: skip frames only where the source runs on its own clock (a probe, a paced replay)."""
    chosen = InferencePolicy(policy)
    if chosen is not InferencePolicy.AUTO:
        return chosen
    return InferencePolicy.LATEST if source.info.realtime else InferencePolicy.EVERY


class FrameQueue(Generic[T]):
    """A bounded queue whose put follows a DisplayPolicy and never outlives a stop request."""

    def __init__(self, maxsize: int, policy: str | DisplayPolicy, stop: threading.Event) -> None:
        self._q: queue.Queue[T] = queue.Queue(maxsize=maxsize)
        self._drop = DisplayPolicy(policy) is DisplayPolicy.DROP_OLDEST
        self._stop = stop
        self.dropped = 0

    def put(self, item: T) -> None:
        q = self._q
        if self._drop:
            while True:
                try:
                    q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        q.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        while not self._stop.is_set():  # BLOCK: wait, but keep seeing stop requests
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def put_last(self, item: T) -> None:
        """Put an end marker: never dropped, given up only on a stop request."""
        while True:
            try:
                self._q.put(item, timeout=0.05)
                return
            except queue.Full:
                if self._stop.is_set():
                    return

    def waiting(self) -> int:
        """About how many items wait now (another thread may change it at once)."""
        return self._q.qsize()

    def get(self, timeout: float) -> T | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None


def _another_still(waiting: Frame | None, new: Frame) -> bool:
    """``waiting`` is a still that ``new`` is not a repeat of (another image, not a moment of a stream)."""
    if waiting is None or not waiting.meta.get("still"):
        return False
    return waiting.meta.get("content_id") is None or waiting.meta.get("content_id") != new.meta.get(
        "content_id"
    )


class LatestSlot:
    """A one-frame mailbox between acquisition and inference.

    LATEST (live use): put() replaces what the reader has not taken yet, and counts it; but a
    still (an X-ray) is not replaced by another image: put() waits until it is taken, so each
    film of a console's burst is analysed (a repeat of the same still, a looped one, replaces it).
    EVERY (offline analysis of a recording): put() waits until the reader has taken the
    previous frame, so every frame is inferred and acquisition slows to inference's pace.
    """

    def __init__(self, policy: str | InferencePolicy = InferencePolicy.LATEST) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self._wait = InferencePolicy(policy) is InferencePolicy.EVERY
        self.replaced = 0

    def put(self, frame: Frame, stop: threading.Event | None = None) -> None:
        with self._cond:
            while (
                (self._wait or _another_still(self._frame, frame))
                and self._frame is not None
                and not self._closed
            ):
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


class ResultBoard:
    """The result each frame is drawn with: inference posts, the display asks per frame.

    LATEST: the newest result, after waiting at most ``sync_s`` for the frame's own. A fast
    model's overlay then lands on the frame it describes instead of the next one. The wait is
    while the worker is on this frame or idle, or on an older frame when, by the worker's recent
    run time, the older frame's rest and one more run end within ``sync_s`` (a fast model a moment
    behind on a busy CPU: without the wait its result reached the screen a whole frame later). A
    slow model, or one not timed yet, is not waited for: the frame goes out at once with the last
    overlay, keeping the source's rate.
    EVERY: the frame's own result (the last good one if its inference failed), waited for as long
    as it takes: every frame is inferred, in order, and inference may be ahead of the display by
    the time a frame is drawn, so the newest result could be the next frame's.
    """

    def __init__(self, policy: InferencePolicy, sync_s: float, stop: threading.Event) -> None:
        self._own = policy is InferencePolicy.EVERY
        self._sync_s = sync_s
        self._stop = stop
        self._cond = threading.Condition()
        self._latest: Result | None = None
        self._busy_seq = -1  # frame the worker is on; -1 when idle
        self._busy_since = 0.0  # monotonic time the worker started it
        self._run_s: float | None = None  # the worker's recent run time (moving average)
        self._done_seq = -1  # the last frame the worker finished (EVERY)
        self._for_seq: dict[int, Result | None] = {}  # EVERY: what each finished frame shows
        self._closed = False

    @property
    def latest(self) -> Result | None:
        return self._latest

    def started(self, seq: int) -> None:
        with self._cond:
            self._busy_seq = seq
            self._busy_since = time.monotonic()

    def finished(self, seq: int, result: Result | None) -> None:
        """The worker is done with frame ``seq``: ``result`` is its Result, None when it failed."""
        with self._cond:
            if result is not None:
                self._latest = result
            if self._own:
                self._for_seq[seq] = self._latest  # its own, or the last good one
            self._done_seq = max(self._done_seq, seq)
            if self._busy_seq == seq:
                took = time.monotonic() - self._busy_since
                self._run_s = took if self._run_s is None else 0.8 * self._run_s + 0.2 * took
            self._busy_seq = -1
            self._cond.notify_all()

    def close(self) -> None:
        """The worker has ended: nobody waits for it any more."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def result_for(self, frame: Frame, *, own: bool = False) -> Result | None:
        """``own``: wait for this frame's own result under either policy (the last frame of a
        finite source, a still: nothing newer will come to show it)."""
        return self._own_result(frame.seq) if self._own or own else self._newest(frame.seq)

    def _own_result(self, seq: int) -> Result | None:
        with self._cond:
            while self._done_seq < seq and not self._closed and not self._stop.is_set():
                self._cond.wait(0.05)
            for old in [s for s in self._for_seq if s < seq]:  # frames the display dropped
                del self._for_seq[old]
            return self._for_seq.pop(seq, self._latest)

    def _due(self, seq: int, deadline: float) -> bool:
        """The worker is on another frame: will ``seq``'s result be there by ``deadline``? Only when
        it is on an older one and, by its recent run time, finishes it and runs once more in time."""
        run = self._run_s
        if run is None or self._busy_seq > seq:
            return False
        now = time.monotonic()
        rest = max(0.0, run - (now - self._busy_since))
        return now + rest + run <= deadline

    def _newest(self, seq: int) -> Result | None:
        if self._sync_s <= 0:
            return self._latest
        deadline = time.monotonic() + self._sync_s
        with self._cond:
            while True:
                latest = self._latest
                if latest is not None and latest.frame_seq >= seq:
                    break
                if self._closed or (self._busy_seq not in (-1, seq) and not self._due(seq, deadline)):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    break
                self._cond.wait(remaining)
            return self._latest


class _Pair:
    __slots__ = ("frame", "result")

    def __init__(self, frame: Frame | None, result: Result) -> None:
        self.frame, self.result = frame, result


class ResultChannel:
    """(frame, result) pairs from inference to the result handlers, in order.

    Results are data: put() waits for room rather than drop one (the wait shows in inference's
    latency). Frames are not: only the newest ``keep_frames`` pairs keep theirs, so handlers that
    stall (a slow disk under the outbox) hold a few frames, not ``maxsize`` of them; older pairs
    reach the handlers with ``frame`` None. With ``keep_frames`` 0 (no handler draws on frames)
    none is held at all: a flat-out replay's backlog would otherwise cost that many frames of
    memory for nothing. Written by one thread, read by one.
    """

    def __init__(self, maxsize: int, keep_frames: int = 32) -> None:
        self._q: queue.Queue[_Pair | None] = queue.Queue(maxsize=maxsize)
        self._framed: deque[_Pair] = deque()
        self._keep = keep_frames

    def put(self, frame: Frame, result: Result) -> None:
        pair = _Pair(frame if self._keep else None, result)
        if self._keep:
            self._framed.append(pair)
            if len(self._framed) > self._keep:
                self._framed.popleft().frame = None  # let go: its handlers are that far behind
        while True:
            try:
                self._q.put(pair, timeout=0.1)
                return
            except queue.Full:
                log.warning("result handlers are behind; inference waits for room")

    def close(self) -> None:
        """No more results: the reader returns once it has had every pair before this."""
        self._q.put(None)

    def take_all(self) -> tuple[list[tuple[Frame | None, Result]], bool]:
        """What is queued now, without waiting, and whether the channel was closed behind it."""
        pairs: list[tuple[Frame | None, Result]] = []
        while True:
            try:
                pair = self._q.get_nowait()
            except queue.Empty:
                return pairs, False
            if pair is None:
                return pairs, True
            pairs.append((pair.frame, pair.result))
            pair.frame = None  # the handlers' call holds it from here, and only for that long
