"""The real-time loop: acquisition, inference and display on their own clocks.

    acquisition thread --every frame--> bounded display queue --> display (caller's thread)
                       --newest frame--> LatestSlot ----------> inference thread --> results

The display never waits for inference: it draws every frame with the latest result. The
inference worker always takes the newest frame; frames it never saw are counted as skipped.
Results are never dropped: they go through a bounded queue to the result handlers, and the
worker waits rather than drop one. Display runs on the caller's thread because GUI toolkits
(OpenCV's HighGUI among them) want their windows driven from one thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.config import ModelConfig, PipelineConfig
from edge.errors import SourceError
from edge.frames import Frame
from edge.inference.model import LoadedModel, ModelOutput
from edge.metrics import Counters, LatencyRecorder, RateMeter
from edge.render.display import Sink
from edge.render.overlay import DEFAULT_STYLE, HudState, compose
from edge.results import Finding, Quality, Result, StageTimes, priority_for, result_for
from edge.runtime.handoff import LatestSlot, resolve_policy

log = logging.getLogger(__name__)

_END = object()  # sentinel on the display queue: the source has ended
ResultHandler = Callable[[Result], None]
StatusProvider = Callable[[], str | None]


@dataclass
class ModelSlot:
    """A loaded model and how the pipeline should run it."""

    model: LoadedModel
    config: ModelConfig
    last: ModelOutput | None = None
    runs: int = 0

    def gate_open(self, quality: Quality | None) -> bool:
        gate = self.config.gate
        if gate is None:
            return True
        if quality is None:  # the gating model has not run yet: do not guess
            return False
        if gate.labels:
            return quality.label in gate.labels
        return quality.ok or not gate.require_ok


class Pipeline:
    def __init__(
        self,
        source: object,
        models: Sequence[ModelSlot],
        sinks: Sequence[Sink],
        config: PipelineConfig,
        *,
        result_handlers: Sequence[ResultHandler] = (),
        status: StatusProvider | None = None,
        hud_extra: StatusProvider | None = None,
        read_timeout_s: float = 0.1,
    ) -> None:
        self.source = source
        # Gating models run first so their verdict on this frame is known to the gated ones.
        gates = {m.config.gate.model for m in models if m.config.gate}
        self.models = sorted(models, key=lambda s: 0 if s.model.name in gates else 1)
        self._urgent = frozenset(lab for s in self.models for lab in s.model.manifest.urgent_labels)
        # Labels counted per frame on screen (B-lines), with the detector that reports them.
        counted_labels = {label for label, _, _ in DEFAULT_STYLE.counters}
        self.counted = tuple(
            (label, s.model.name)
            for s in self.models
            if s.model.task == "detection"
            for label in s.model.manifest.labels
            if label in counted_labels
        )
        self.sinks = list(sinks)
        self.config = config
        self.handlers = list(result_handlers)
        self.status = status
        self.hud_extra = hud_extra
        self.read_timeout_s = min(read_timeout_s, 0.1)  # bounded so a stop is seen within 1 s
        self.counters = Counters()
        self.latency = LatencyRecorder()
        self.source_rate = RateMeter()
        self.ai_rate = RateMeter()
        self.display_rate = RateMeter()
        self.stop_event = threading.Event()
        self.stop_requested = False  # by a signal or the user, as opposed to the source's end
        self._display_q: queue.Queue[object] = queue.Queue(maxsize=config.display_queue)
        self._results_q: queue.Queue[Result | None] = queue.Queue(maxsize=config.result_queue)
        self.inference_policy = resolve_policy(config.inference_policy, source)
        self._slot = LatestSlot(self.inference_policy)
        self._every = self.inference_policy == "every"
        self._latest: Result | None = None  # written by inference, read by display
        # "every": the result each frame goes to the display with (inference may be a frame ahead
        # of the display by the time the frame is drawn, so _latest would be the next frame's).
        self._result_for_seq: dict[int, Result | None] = {}
        self._busy_seq = -1  # frame the inference worker is on; -1 when idle
        self._result_cond = threading.Condition()
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
            self.counters.skipped = self._slot.replaced
        return self.counters

    def _join(self) -> None:
        deadline = time.monotonic() + self.config.stop_timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.error("thread %s did not stop within %.1f s", t.name, self.config.stop_timeout_s)

    # -- acquisition -----------------------------------------------------------------------
    def _acquire_loop(self, max_frames: int | None) -> None:
        src = self.source
        try:
            while not self.stop_event.is_set():
                if max_frames is not None and self.counters.acquired >= max_frames:
                    break
                try:
                    frame = src.read(self.read_timeout_s)  # type: ignore[attr-defined]
                except SourceError as exc:
                    self.counters.source_errors += 1
                    log.error("source failed: %s", exc)
                    self.error = exc
                    break
                if frame is None:
                    if src.eof:  # type: ignore[attr-defined]
                        break
                    continue
                self.counters.acquired += 1
                self.source_rate.tick(frame.t_acquired_ns)
                self._slot.put(frame, self.stop_event)
                if not self._every:
                    self._to_display(frame)
        finally:
            self._slot.close()
            if not self._every:
                self._put_display_end()

    def _to_display(self, frame: Frame) -> None:
        q = self._display_q
        if self.config.display_policy == "drop_oldest":
            while True:
                try:
                    q.put_nowait(frame)
                    return
                except queue.Full:
                    try:
                        q.get_nowait()
                        self.counters.display_dropped += 1
                    except queue.Empty:
                        pass
        while not self.stop_event.is_set():  # "block": wait, but keep seeing stop requests
            try:
                q.put(frame, timeout=0.05)
                return
            except queue.Full:
                continue

    def _put_display_end(self) -> None:
        while True:
            try:
                self._display_q.put(_END, timeout=0.05)
                return
            except queue.Full:
                if self.stop_event.is_set():
                    return

    # -- inference -------------------------------------------------------------------------
    def _inference_loop(self) -> None:
        try:
            self._infer_frames()
        finally:
            self._results_q.put(None)
            if self._every:
                self._put_display_end()

    def _infer_frames(self) -> None:
        # On stop, finish the frame in hand but start no new one; at the source's end, drain.
        # With "every", frames reach the display from here, after their result: each one is shown
        # with its own overlay, and display, inference and decoding overlap as three stages.
        while not self.stop_event.is_set():
            frame = self._slot.take(0.05)
            if frame is None:
                if self._slot.drained:
                    break
                continue
            self._busy_seq = frame.seq
            try:
                result, model_ns = self._infer(frame)
            except Exception:  # one bad frame must never stop the live loop
                self.counters.inference_errors += 1
                log.exception("inference failed on frame %d of %s", frame.seq, frame.source_id)
                self._publish(None)
            else:
                self.counters.inferred += 1
                self.ai_rate.tick(result.times.t_result_ns)
                self._record_inference(frame, result, model_ns)
                self._publish(result)
                self._emit(result)
            if self._every:
                self._result_for_seq[frame.seq] = self._latest  # its own, or the last good one
                self._to_display(frame)

    def _publish(self, result: Result | None) -> None:
        with self._result_cond:
            if result is not None:
                self._latest = result
            self._busy_seq = -1
            self._result_cond.notify_all()

    def _infer(self, frame: Frame) -> tuple[Result, int]:
        t_start = time.monotonic_ns()
        quality: Quality | None = None
        findings: list[Finding] = []
        gated = False
        model_ns = 0
        t_model_start = t_model_end = 0
        for slot in self.models:
            if not slot.gate_open(quality):
                gated = True
                continue
            if slot.last is None or slot.runs % slot.config.every_n == 0:
                out = slot.model.infer(frame.image)
                slot.last = out
                model_ns += out.t_model_end_ns - out.t_model_start_ns
                t_model_start = t_model_start or out.t_model_start_ns
                t_model_end = out.t_model_end_ns
            slot.runs += 1
            out = slot.last
            if out.quality is not None:
                quality = out.quality
            findings.extend(out.findings)
        if gated:
            self.counters.gated += 1
        t_result = time.monotonic_ns()
        times = StageTimes(
            t_acquired_ns=frame.t_acquired_ns,
            t_infer_start_ns=t_start,
            t_model_start_ns=t_model_start or t_start,
            t_model_end_ns=t_model_end or t_start,
            t_result_ns=t_result,
        )
        models = tuple(s.model.info for s in self.models)
        result = result_for(frame, quality, findings, models, times, gated, self._priority(findings))
        return result, model_ns

    def _priority(self, findings: list[Finding]) -> int:
        return priority_for(findings, self._urgent)

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

    def _emit(self, result: Result) -> None:
        self.counters.results += 1
        while True:  # results are data: wait for room rather than drop one
            try:
                self._results_q.put(result, timeout=0.1)
                return
            except queue.Full:
                log.warning("result handlers are behind; inference waits for room")

    def _results_loop(self) -> None:
        # Drained in batches every 20 ms rather than woken per result: a wake-up per frame costs
        # the inference thread a context switch, and handlers (files, the outbox) batch better.
        q = self._results_q
        while True:
            time.sleep(0.02)
            while True:
                try:
                    result = q.get_nowait()
                except queue.Empty:
                    break
                if result is None:
                    return
                for handler in self.handlers:
                    try:
                        handler(result)
                    except Exception:
                        log.exception("result handler %r failed on result %s", handler, result.result_id)

    # -- display ---------------------------------------------------------------------------
    def _display_loop(self) -> bool:
        """Show frames until the source ends (True) or a stop is asked for (False)."""
        q = self._display_q
        while not self.stop_event.is_set():
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                self._hold_redraw()
                continue
            if item is _END:
                return True
            assert isinstance(item, Frame)
            self._show(item)
            if any(s.wants_stop() for s in self.sinks):
                log.info("display closed by the user")
                self.stop_requested = True
                return False
        return False

    def _await_result(self, frame: Frame) -> Result | None:
        """The latest result, after waiting (bounded by display_sync_ms) for this frame's own.

        A fast model's overlay then lands on the frame it describes instead of the next one, so
        boxes do not trail moving anatomy by a frame. The display waits only when the worker is
        on this frame or idle; a worker busy on an older frame means a slow model, and the frame
        is shown at once with the last overlay, keeping the display at the source's rate.
        """
        if self._every:
            return self._result_for_seq.pop(frame.seq, self._latest)
        wait_s = self.config.display_sync_ms / 1000
        if wait_s <= 0 or not self.models:
            return self._latest
        deadline = time.monotonic() + wait_s
        with self._result_cond:
            while True:
                latest = self._latest
                if latest is not None and latest.frame_seq >= frame.seq:
                    break
                if self._busy_seq not in (-1, frame.seq):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stop_event.is_set():
                    break
                self._result_cond.wait(remaining)
            return self._latest

    def _hud_state(self) -> HudState:
        """HUD figures, refreshed 4 times a second: a median per frame would cost the GIL dearly."""
        now = time.monotonic_ns()
        if self._hud is None or now - self._hud_ns > 250_000_000:
            self._hud_ns = now
            self._hud = HudState(
                source_fps=self.source_rate.rate(now),
                ai_fps=self.ai_rate.rate(now),
                latency_ms=self.latency.recent_median("e2e"),
                skipped=self._slot.replaced,
                status=self.status() if self.status else None,
                extra=tuple(t for t in (self.hud_extra() if self.hud_extra else None,) if t),
            )
        return self._hud

    def _hold_redraw(self) -> None:
        """No frame is coming (probe unplugged, say): redraw the last one so an alarm still shows.

        Only while the source reports a status, at most 4 times a second, and not counted as a
        displayed frame: nothing new was acquired. No overlay is drawn: the last result describes
        a scan that is no longer happening, so the meter goes grey rather than stay green.
        """
        frame = self._last_frame
        if frame is None or self.status is None:
            return
        now = time.monotonic_ns()
        if now - self._hold_ns < 250_000_000 or self.status() is None:
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

    def _show(self, frame: Frame) -> None:
        self._last_frame = frame
        result = self._await_result(frame)
        hud = self._hud_state()
        if not self._sinks_open:
            # Opened here, on the display thread, at the first frame's size: GUI windows must be
            # created by the thread that draws them, and a video file needs the real size and rate.
            self._sinks_open = True
            fps = getattr(getattr(self.source, "info", None), "fps", None)
            for sink in self.sinks:
                sink.open(frame.width, frame.height, fps)
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

    @property
    def exit_reason(self) -> str:
        if self.error is not None:
            return "error"
        return "stopped" if self.stop_requested else "completed"

    # -- report ----------------------------------------------------------------------------
    def elapsed_s(self) -> float:
        end = self.ended_ns or time.monotonic_ns()
        return max(1e-9, (end - self.started_ns) / 1e9)
