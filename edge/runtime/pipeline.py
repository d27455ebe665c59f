"""The real-time loop: acquisition, inference and display on their own clocks, one route for all.

    acquisition --every frame--> FrameQueue ----------------> display (caller's thread)
        |                                                         ^ result for each frame
        +--newest frame--> LatestSlot --> inference --> ResultBoard
                                        (ModelChain)  --> ResultChannel --> results thread
                                                                           --> handlers(frame, result)

The route is the same under both inference policies; only the hand-offs behave differently
(:mod:`edge.runtime.handoff`). LATEST (live): the slot keeps the newest frame and counts those
replaced; the display draws every frame at the source's rate with the newest result, waiting
at most ``display_sync_ms`` for a fast model's own. EVERY (a recording analysed): the slot
makes acquisition wait for inference, and the display draws each frame with its own result.

Results are never dropped: they go through a bounded channel to the handlers, and the worker
waits rather than drop one. Display runs on the caller's thread because GUI toolkits (OpenCV's
HighGUI among them) want their windows driven from one thread. This module is threads and
channels only: what runs on a frame is the ModelChain's business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import cv2
import numpy as np

from edge.config import PipelineConfig
from edge.errors import SourceError
from edge.frames import Frame
from edge.inference.chain import ModelChain
from edge.metrics import Counters, LatencyRecorder, RateMeter
from edge.render.display import Sink
from edge.render.overlay import DEFAULT_STYLE, HudState, compose
from edge.results import Result
from edge.runtime.handoff import FrameQueue, LatestSlot, ResultBoard, ResultChannel, resolve_policy
from edge.runtime.ports import AlarmReporter, ResultHandler, StatusReporter
from edge.sources.base import Source

log = logging.getLogger(__name__)

_END = object()  # on the display queue: the source has ended
_HUD_EVERY_NS = 250_000_000  # HUD figures and alarm redraws, 4 times a second


class Pipeline:
    def __init__(
        self,
        source: Source,
        chain: ModelChain,
        sinks: Sequence[Sink],
        config: PipelineConfig,
        *,
        result_handlers: Sequence[ResultHandler] = (),
        alarm: AlarmReporter | None = None,
        status: StatusReporter | None = None,
        handler_frames: int = 32,
        read_timeout_s: float = 0.1,
    ) -> None:
        """``handler_frames``: how many of the newest results not yet handled keep their frame for
        the handlers (older ones reach them with None); 0 when no handler draws on frames."""
        self.source = source
        self.chain = chain
        self.counted = chain.counted({label for label, _, _ in DEFAULT_STYLE.counters})
        self.sinks = list(sinks)
        self.config = config
        self.handlers = list(result_handlers)
        self.alarm = alarm
        self.status = status
        self.read_timeout_s = min(read_timeout_s, 0.1)  # bounded so a stop is seen within 1 s
        self.counters = Counters()
        self.latency = LatencyRecorder()
        self.source_rate = RateMeter()
        self.ai_rate = RateMeter()
        self.display_rate = RateMeter()
        self.stop_event = threading.Event()
        self.stop_requested = False  # by a signal or the user, as opposed to the source's end
        self.inference_policy = resolve_policy(config.inference_policy, source)
        # The channels; every frame takes the same route whatever the policy.
        self._display_q: FrameQueue[object] = FrameQueue(
            config.display_queue, config.display_policy, self.stop_event
        )
        self._slot = LatestSlot(self.inference_policy)
        sync_s = config.display_sync_ms / 1000 if len(chain) else 0.0
        self._board = ResultBoard(self.inference_policy, sync_s, self.stop_event)
        self._results = ResultChannel(config.result_queue, handler_frames if self.handlers else 0)
        # Display-thread state.
        self._last_shown_id: str | None = None
        self._out: np.ndarray | None = None
        self._sinks_open = False
        self._hud: HudState | None = None
        self._last_frame: Frame | None = None
        self._hold_ns = 0
        self._hud_ns = 0
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None
        self.started_ns = 0
        self.ended_ns = 0

    # -- control ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask every stage to finish; safe from a signal handler."""
        self.stop_requested = True
        self.stop_event.set()

    def run(self, max_frames: int | None = None) -> Counters:
        """Run until the source ends, ``max_frames`` are acquired, or stop() is called."""
        if self.config.opencv_threads:
            cv2.setNumThreads(self.config.opencv_threads)
        self.started_ns = time.monotonic_ns()
        self._threads = [
            threading.Thread(target=self._acquire_loop, args=(max_frames,), name="acquire", daemon=True),
            threading.Thread(target=self._inference_loop, name="inference", daemon=True),
            threading.Thread(target=self._results_loop, name="results", daemon=True),
        ]
        for t in self._threads:
            t.start()
        try:
            ended_by_source = self._display_loop()
            if ended_by_source:
                # Let inference finish the newest frame so the last result is not lost to the race.
                self._threads[1].join(self.config.stop_timeout_s)
        finally:
            self.stop_event.set()
            self._slot.close()
            self._join()
            self.ended_ns = time.monotonic_ns()
            # Counted inside the channels and the chain; final once their threads have ended.
            self.counters.skipped = self._slot.replaced
            self.counters.display_dropped = self._display_q.dropped
            self.counters.gated = self.chain.gated_frames
        return self.counters

    def _join(self) -> None:
        deadline = time.monotonic() + self.config.stop_timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.error("thread %s did not stop within %.1f s", t.name, self.config.stop_timeout_s)

    @property
    def exit_reason(self) -> str:
        if self.error is not None:
            return "error"
        return "stopped" if self.stop_requested else "completed"

    def elapsed_s(self) -> float:
        end = self.ended_ns or time.monotonic_ns()
        return max(1e-9, (end - self.started_ns) / 1e9)

    # -- acquisition: every frame to the display, the newest to inference ----------------------
    def _acquire_loop(self, max_frames: int | None) -> None:
        src = self.source
        try:
            while not self.stop_event.is_set():
                if max_frames is not None and self.counters.acquired >= max_frames:
                    break
                try:
                    frame = src.read(self.read_timeout_s)
                except SourceError as exc:
                    self.counters.source_errors += 1
                    log.error("source failed: %s", exc)
                    self.error = exc
                    break
                if frame is None:
                    if src.eof:
                        break
                    continue
                self.counters.acquired += 1
                self.source_rate.tick(frame.t_acquired_ns)
                self._slot.put(frame, self.stop_event)  # EVERY: waits for inference to take the last
                self._display_q.put(frame)
        finally:
            self._slot.close()
            self._display_q.put_last(_END)

    # -- inference -------------------------------------------------------------------------
    def _inference_loop(self) -> None:
        try:
            self._infer_frames()
        finally:
            self._board.close()
            self._results.close()

    def _infer_frames(self) -> None:
        # On stop, finish the frame in hand but start no new one; at the source's end, drain.
        while not self.stop_event.is_set():
            frame = self._slot.take(0.05)
            if frame is None:
                if self._slot.drained:
                    break
                continue
            self._board.started(frame.seq)
            try:
                out = self.chain.run(frame)
            except Exception:  # one bad frame must never stop the live loop
                self.counters.inference_errors += 1
                log.exception("inference failed on frame %d of %s", frame.seq, frame.source_id)
                self._board.finished(frame.seq, None)
                continue
            result = out.result
            self.counters.inferred += 1
            self.ai_rate.tick(result.times.t_result_ns)
            self._record_inference(frame, result, out.model_ns)
            self._board.finished(frame.seq, result)
            self.counters.results += 1
            self._results.put(frame, result)

    def _record_inference(self, frame: Frame, result: Result, model_ns: int) -> None:
        # e2e: from the frame's hand-over to the runtime to its result; capture_to_result adds what
        # happened before (transport, a replay's pacing, a reader that fell behind).
        t = result.times
        rec = self.latency.add
        received = frame.received_ns
        e2e_ns = t.t_result_ns - received
        rec("source_wait", (received - t.t_acquired_ns) / 1e6)
        rec("capture_to_result", (t.t_result_ns - t.t_acquired_ns) / 1e6)
        rec("queue_wait", (t.t_infer_start_ns - received) / 1e6)
        rec("model", model_ns / 1e6)
        rec("pre_post", (t.t_result_ns - t.t_infer_start_ns - model_ns) / 1e6)
        rec("e2e", e2e_ns / 1e6)
        rec("overhead", (e2e_ns - model_ns) / 1e6)

    def _results_loop(self) -> None:
        # Drained in batches every 20 ms rather than woken per result: a wake-up per frame costs
        # the inference thread a context switch, and handlers (files, the outbox) batch better.
        ended = False
        while not ended:
            time.sleep(0.02)
            pairs, ended = self._results.take_all()
            for frame, result in pairs:
                for handler in self.handlers:
                    try:
                        handler(frame, result)
                    except Exception:
                        log.exception("result handler %r failed on result %s", handler, result.result_id)

    # -- display ---------------------------------------------------------------------------
    def _display_loop(self) -> bool:
        """Show frames until the source ends (True) or a stop is asked for (False)."""
        while not self.stop_event.is_set():
            item = self._display_q.get(timeout=0.05)
            if item is None:
                self._hold_redraw()
                continue
            if item is _END:
                return True
            assert isinstance(item, Frame)
            self._show(item, self._board.result_for(item))
            if any(s.wants_stop() for s in self.sinks):
                log.info("display closed by the user")
                self.stop_requested = True
                return False
        return False

    def _hud_state(self) -> HudState:
        """HUD figures, refreshed 4 times a second: a median per frame would cost the GIL dearly."""
        now = time.monotonic_ns()
        if self._hud is None or now - self._hud_ns > _HUD_EVERY_NS:
            self._hud_ns = now
            line = self.status.hud_text() if self.status else None
            self._hud = HudState(
                source_fps=self.source_rate.rate(now),
                ai_fps=self.ai_rate.rate(now),
                latency_ms=self.latency.recent_median("e2e"),
                skipped=self._slot.replaced,
                status=self.alarm.status_text() if self.alarm else None,
                extra=(line,) if line else (),
            )
        return self._hud

    def _hold_redraw(self) -> None:
        """No frame is coming (probe unplugged, say): redraw the last one so an alarm still shows.

        Only while the source reports an alarm, at most 4 times a second, and not counted as a
        displayed frame: nothing new was acquired. No overlay is drawn: the last result describes
        a scan that is no longer happening, so the meter goes grey rather than stay green.
        """
        frame = self._last_frame
        if frame is None or self.alarm is None:
            return
        now = time.monotonic_ns()
        if now - self._hold_ns < _HUD_EVERY_NS or self.alarm.status_text() is None:
            return
        self._hold_ns = now
        self._hud = None  # refresh the HUD so the new status is drawn
        try:
            self._out = compose(frame.image, None, self._hud_state(), out=self._out)
            for sink in self.sinks:
                sink.show(self._out, frame.seq)
        except Exception:
            self.counters.display_errors += 1
            log.exception("redrawing the last frame failed")

    def _show(self, frame: Frame, result: Result | None) -> None:
        self._last_frame = frame
        hud = self._hud_state()
        if not self._sinks_open:
            # Opened here, on the display thread, at the first frame's size: GUI windows must be
            # created by the thread that draws them, and a video file needs the real size and rate.
            self._sinks_open = True
            for sink in self.sinks:
                sink.open(frame.width, frame.height, self.source.info.fps)
        try:
            self._out = compose(frame.image, result, hud, out=self._out, counted=self.counted)
            for sink in self.sinks:
                sink.show(self._out, frame.seq)
        except Exception:
            self.counters.display_errors += 1
            log.exception("display failed on frame %d", frame.seq)
            return
        now = time.monotonic_ns()
        self.counters.displayed += 1
        self.display_rate.tick(now)
        self.latency.add("display", (now - frame.t_acquired_ns) / 1e6)
        if result is not None and result.result_id != self._last_shown_id:
            # First frame on screen carrying this result: acquisition-to-eye latency of the AI.
            self._last_shown_id = result.result_id
            self.latency.add("result_on_screen", (now - result.times.t_acquired_ns) / 1e6)
