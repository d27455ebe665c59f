# Over 400 lines: four loops and the channels between them share one run's state and counters.
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

Every stage reports each attempt to one :class:`~edge.runtime.failures.StageMonitor` (one bad
frame is nothing; a stage that keeps failing is a HUD alarm, then a "failed" run); a full disk
closes the expendable outputs (``expendable = True``), each on the thread that drives it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

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
from edge.runtime.cpu import CpuLedger, meter_sessions
from edge.runtime.failures import FailureBudget, StageFailure, StageMonitor, stop_expendable
from edge.runtime.handoff import (
    FrameQueue,
    InferencePolicy,
    LatestSlot,
    ResultBoard,
    ResultChannel,
    resolve_policy,
)
from edge.runtime.health import Health
from edge.runtime.ports import AlarmReporter, ResultHandler, StatusReporter, stage_names
from edge.runtime.sinkset import SinkSet
from edge.sources._common import read_fresh
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
        failures: FailureBudget | None = None,
        fallback_sink: Callable[[], Sink | None] | None = None,
        liveness: Health | None = None,
        max_age_ms: float = 0.0,
    ) -> None:
        """``handler_frames``: how many of the newest results not yet handled keep their frame for
        the handlers (older ones reach them with None); 0 when no handler draws on frames.
        ``fallback_sink``: made to replace a window that cannot open or keeps failing (a video).
        ``liveness``: each loop's progress, for the watchdog (the composition root sets deadlines).
        ``max_age_ms``: a live frame older than this is dropped when a newer one is waiting
        (``[live]``; 0: never); a replay run flat out (policy EVERY) never drops one."""
        self.source = source
        self.chain = chain
        self.counted = chain.counted({label for label, _, _ in DEFAULT_STYLE.counters})
        self.config = config
        self.handlers = list(zip(stage_names(result_handlers, "handler"), result_handlers))
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
        self.stop_reason: str | None = None
        self.end_reason: str | None = None  # how a run that was not stopped ended
        self.stages = StageMonitor(failures, on_over_budget=self._over_budget)  # failures per stage
        self.liveness = liveness or Health()  # progress per stage (watchdog); beats are lock-free
        self.failure: StageFailure | None = None
        self.cpu = CpuLedger(meter_sessions(s.model for s in chain.slots), children=self._children_cpu)
        self.display = SinkSet(sinks, self.stages, fallback_sink, cpu=self.cpu)
        self.inference_policy = resolve_policy(config.inference_policy, source)
        live = self.inference_policy is InferencePolicy.LATEST
        self.max_age_ns = round(max_age_ms * 1e6) if live else 0
        # Frames too old to show with a newer one waiting, each counter written by one thread:
        self.stale_at_source = 0  # dropped at acquisition (never counted as acquired)
        self.stale_at_display = 0  # acquired, dropped by the display (acquired = displayed + these)
        # The channels; every frame takes the same route whatever the policy.
        self._display_q: FrameQueue[object] = FrameQueue(
            config.display_queue, config.display_policy, self.stop_event
        )
        self._slot = LatestSlot(self.inference_policy)
        sync_s = config.display_sync_ms / 1000 if len(chain) else 0.0
        self._board = ResultBoard(self.inference_policy, sync_s, self.stop_event)
        self._results = ResultChannel(config.result_queue, handler_frames if self.handlers else 0)
        self._last_seq: int | None = None  # a finite source's last frame waits for its own result
        # Display-thread state.
        self._last_shown_id: str | None = None
        self._shown_content: str | None = None  # the still on screen (its content_id)
        self._films = 0  # distinct stills shown: the HUD counts them instead of a frame rate
        self._out: np.ndarray | None = None
        self._hud: HudState | None = None
        self._last_frame: Frame | None = None
        self._hold_ns = 0
        self._hud_ns = 0
        self._overlay_ns = 0
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None
        self.started_ns = 0
        self.ended_ns = 0

    def _children_cpu(self) -> dict[str, int]:
        """CPU ns of the child processes that work for the sinks (the recording's encoder)."""
        ns = sum(int(getattr(s, "encoder_cpu_ns", lambda: 0)()) for s in self.display.sinks)
        return {"video-encoder": ns} if ns else {}

    @property
    def sinks(self) -> list[Sink]:
        return self.display.sinks

    # -- control ---------------------------------------------------------------------------
    def stop(self, reason: str = "stop requested") -> None:
        """Ask every stage to finish; safe from a signal handler."""
        if not self.stop_requested:
            self.stop_reason = reason
        self.stop_requested = True
        self.stop_event.set()

    def _over_budget(self, failure: StageFailure) -> None:
        self.failure = failure
        self.stop_event.set()

    def run(self, max_frames: int | None = None) -> Counters:
        """Run until the source ends, ``max_frames`` are acquired, or stop() is called.

        Never raises for what a stage does: a thread that dies or a display loop that raises is
        recorded as ``error`` and stops the run, so the caller can still report it."""
        if self.config.opencv_threads:
            cv2.setNumThreads(self.config.opencv_threads)
        self.started_ns = time.monotonic_ns()
        count = self.source.info.frame_count
        self._last_seq = count - 1 if count else None
        loops = {"acquire": partial(self._acquire_loop, max_frames), "inference": self._inference_loop,
                 "results": self._results_loop}  # fmt: skip
        self._threads = [threading.Thread(target=self._guard, args=(f,), name=n, daemon=True)
                         for n, f in loops.items()]  # fmt: skip
        self.cpu.start()
        for t in self._threads:
            t.start()
        try:
            t0 = time.thread_time_ns()
            try:
                ended_by_source = self._display_loop()
            finally:
                self.liveness.done("display")
                # The display thread's own work: what the overlay and the sinks took is theirs.
                spent = time.thread_time_ns() - t0 - self._overlay_ns - self.display.show_ns
                self.cpu.add("display", spent)
            if ended_by_source:
                # Let inference finish the newest frame so the last result is not lost to the race.
                self._threads[1].join(self.config.stop_timeout_s)
        except Exception as exc:
            self._died("display", exc)
        finally:
            self.stop_event.set()
            self._slot.close()
            self._join()
            self.ended_ns = time.monotonic_ns()
            self.cpu.stop()
            # Counted inside the channels and the chain; final once their threads have ended.
            self.counters.skipped = self._slot.replaced
            self.counters.display_dropped = self._display_q.dropped
            self.counters.gated = self.chain.gated_frames
            self.counters.extra["stale_at_source"] = self.stale_at_source
            self.counters.extra["stale_at_display"] = self.stale_at_display
        if self.failure is None and self.error is None:
            self.failure = self.stages.never_succeeded()  # however short, that run did not complete
            if self.failure is not None:
                log.error("the run did not complete: %s", self.failure.describe())
        return self.counters

    def _guard(self, loop: Callable[[], None]) -> None:
        name = threading.current_thread().name
        t0 = time.thread_time_ns()
        try:
            loop()
        except Exception as exc:  # a bug, not a bad frame: the run stops and says so
            self._died(name, exc)
        finally:  # ended, not stuck
            stage = "acquisition" if name == "acquire" else name
            # The whole thread's CPU time: inference's holds the models' (the ledger splits them).
            self.cpu.add("pre_post" if stage == "inference" else stage, time.thread_time_ns() - t0)
            self.liveness.done(stage)

    def _died(self, stage: str, exc: BaseException) -> None:
        log.critical("the %s stage died: %s", stage, exc, exc_info=exc)
        if self.error is None:
            self.error = exc
        self.stop_event.set()

    def _join(self) -> None:
        deadline = time.monotonic() + self.config.stop_timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.error("thread %s did not stop within %.1f s", t.name, self.config.stop_timeout_s)

    @property
    def exit_reason(self) -> str:  # "failed": a stage over its failure budget, or never working
        if self.failure is not None:
            return "failed"
        if self.error is not None:
            return "error"
        return "stopped" if self.stop_requested else "completed"

    @property
    def reason(self) -> str | None:
        """In words, why the run ended as it did."""
        if self.failure is not None:
            return self.failure.describe()
        if self.error is not None:
            return f"{type(self.error).__name__}: {self.error}"
        return self.stop_reason if self.stop_requested else self.end_reason

    def elapsed_s(self) -> float:
        end = self.ended_ns or time.monotonic_ns()
        return max(1e-9, (end - self.started_ns) / 1e9)

    # -- acquisition: every frame to the display, the newest to inference ----------------------
    def _acquire_loop(self, max_frames: int | None) -> None:
        src = self.source
        try:
            while not self.stop_event.is_set():
                self.liveness.beat("acquisition")
                if max_frames is not None and self.counters.acquired >= max_frames:
                    self.end_reason = f"{max_frames} frames acquired (--max-frames)"
                    break
                try:
                    frame, stale = read_fresh(src, self.read_timeout_s, self.max_age_ns)
                    self.stale_at_source += stale
                except SourceError as exc:  # the source as a whole is gone (its contract)
                    self.counters.source_errors += 1
                    log.error("source failed: %s", exc)
                    self.error = exc
                    break
                except Exception as exc:  # one bad read: counted, and the source is read again
                    self.counters.source_errors += 1
                    self.stages.failed("acquisition", exc, "reading the source")
                    self.stop_event.wait(self.read_timeout_s)  # no hot loop on a source that keeps failing
                    continue
                if frame is None:
                    if src.eof:
                        self.end_reason = "the source ended"
                        break
                    continue
                self.stages.ok("acquisition")
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
            self.liveness.beat("inference")  # waiting for a frame is not stuck
            frame = self._slot.take(0.05)
            if frame is None:
                if self._slot.drained:
                    break
                continue
            self._board.started(frame.seq)
            try:
                out = self.chain.run(frame)
            except Exception as exc:  # one bad frame must never stop the live loop
                self.counters.inference_errors += 1
                self._board.finished(frame.seq, None)
                self.stages.failed("inference", exc, f"frame {frame.seq} of {frame.source_id}")
                continue
            self.stages.ok("inference")
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
            self.liveness.beat("results")
            time.sleep(0.02)
            pairs, ended = self._results.take_all()
            for frame, result in pairs:
                if self.stages.disk_full:
                    self.handlers = stop_expendable(self.handlers, self.stages)
                for name, handler in self.handlers:
                    self.liveness.beat("results")  # the deadline is per handler call
                    try:
                        handler(frame, result)
                    except Exception as exc:
                        self.stages.output_failed(name, handler, exc, f"result {result.result_id}")
                    else:
                        self.stages.ok(name)

    # -- display ---------------------------------------------------------------------------
    def _display_loop(self) -> bool:
        """Show frames until the source ends (True) or a stop is asked for (False)."""
        while not self.stop_event.is_set():
            self.liveness.beat("display")
            item = self._display_q.get(timeout=0.05)
            if item is None:
                self._hold_redraw()
                continue
            if item is _END:
                self._hold_last_still()
                return True
            assert isinstance(item, Frame)
            if self.max_age_ns and self._display_q.waiting() and self._stale(item):
                self.stale_at_display += 1  # a newer frame is waiting: show that one instead
                continue
            # A finite source's last frame (a still, say) waits for its own result: no later frame
            # will come to show it, and the recording would keep "quality: --" for good. So does a
            # new still (the next X-ray): drawn with the last film's verdict, it would say another's.
            content = item.meta.get("content_id") if item.meta.get("still") else None
            new_still = content is not None and content != self._shown_content
            own = new_still or (self._last_seq is not None and item.seq >= self._last_seq)
            result = self._board.result_for(item, own=own)
            if content is not None and result is not None and result.content_id != content:
                result = None  # its own failed: nothing, rather than another film's
            self._films += new_still
            self._shown_content = content
            self._show(item, result)
            if self.display.wants_stop():
                log.info("display closed by the user")
                self.stop("the window was closed")
                return False
        return False

    @property
    def stale_dropped(self) -> int:
        """Live frames dropped as too old to show, at acquisition and at the display."""
        return self.stale_at_source + self.stale_at_display

    def _stale(self, frame: Frame) -> bool:
        if frame.meta.get("still"):  # an X-ray of a burst is an image of its own: each is shown
            return False
        return time.monotonic_ns() - frame.t_acquired_ns > self.max_age_ns

    def _hud_state(self, still: bool = False) -> HudState:
        """HUD figures, refreshed 4 times a second: a median per frame would cost the GIL dearly.
        An alarm that comes or goes is drawn at once, not up to a refresh later. On a still (an
        X-ray) the films shown, as a frame rate means nothing there."""
        now = time.monotonic_ns()
        hud, films = self._hud, (self._films if still else None)
        status = self._alarm_text()
        if (
            hud is None
            or now - self._hud_ns > _HUD_EVERY_NS
            or hud.films != films
            or (status is None) != (hud.status is None)
        ):
            self._hud_ns = now
            line = self.status.hud_text() if self.status else None
            self._hud = hud = HudState(
                source_fps=self.source_rate.rate(now),
                ai_fps=self.ai_rate.rate(now),
                latency_ms=self.latency.recent_median("e2e"),
                skipped=self._slot.replaced,
                stale=self.stale_dropped,
                status=status,
                extra=tuple(t[:72] for t in (line, *self.stages.notes) if t),
                films=films,
            )
        return hud

    def _alarm_text(self) -> str | None:
        """The red line: a stuck stage, the source's alarm (a probe unplugged), stages failing."""
        parts = (self.liveness.status_text(), self.alarm.status_text() if self.alarm else None,
                 self.stages.alarm_text())  # fmt: skip
        return " | ".join(p for p in parts if p) or None

    def _hold_last_still(self) -> None:
        """A finite source ended on a still (one X-ray file): it stays in its window, with its
        overlay, until the window is closed or the run stopped; a window must not flash and close."""
        frame = self._last_frame
        if frame is None or not frame.meta.get("still") or self._out is None or not self.display.holds:
            return
        if not self.source.eof:  # --max-frames or a stop ended it: the run ends as asked
            return
        log.info("the last image stays on screen: close its window (q, Esc) to end the run")
        while not self.stop_event.is_set() and self.display.holds and not self.display.wants_stop():
            self.liveness.beat("display")
            self.display.hold(self._out, frame.seq)
            self.stop_event.wait(0.1)

    def _hold_redraw(self) -> None:
        """No frame is coming (probe unplugged, say): redraw the last one so an alarm still shows.
        Only while an alarm is up, at most 4 times a second, not counted as displayed, and with
        no overlay: the last result describes a scan no longer happening (the meter goes grey).
        Without an alarm, a still (an X-ray, the console's next exposure awaited) is shown again with
        its overlay, to its windows only: its result still describes it, and the window answers."""
        frame = self._last_frame
        if frame is None:
            return
        now = time.monotonic_ns()
        if now - self._hold_ns < _HUD_EVERY_NS:
            return
        if self._alarm_text() is None:
            if frame.meta.get("still") and self._out is not None:  # a live still source between images:
                self._hold_ns = now  # the image stays, with its overlay, its window answering
                latest = self._board.latest
                late = latest is not None and latest.frame_seq == frame.seq
                if late and latest is not None and latest.result_id != self._last_shown_id:
                    self._show(frame, latest)  # its result came after it was first drawn (a slow model)
                else:
                    self.display.hold(self._out, frame.seq)
            return
        self._hold_ns = now
        self._hud = None  # refresh the HUD so the new status is drawn
        try:
            self._out = compose(
                frame.image, None, self._hud_state(bool(frame.meta.get("still"))), out=self._out
            )
        except Exception as exc:
            self.counters.display_errors += 1
            self.stages.failed("overlay", exc, "redrawing the last frame")
            return
        self.display.show(self._out, frame.seq)

    def _show(self, frame: Frame, result: Result | None) -> None:
        self._last_frame = frame
        hud = self._hud_state(bool(frame.meta.get("still")))
        if not self.display.opened:
            # Opened here, on the display thread, at the first frame's size: GUI windows must be
            # created by the thread that draws them, and a video file needs the real size and rate.
            self.display.open(frame.width, frame.height, self.source.info.fps)
        t0 = time.thread_time_ns()
        try:
            self._out = compose(frame.image, result, hud, out=self._out, counted=self.counted)
        except Exception as exc:
            self.counters.display_errors += 1
            self.stages.failed("overlay", exc, f"frame {frame.seq}")
            return
        self.stages.ok("overlay")
        spent = time.thread_time_ns() - t0
        self._overlay_ns += spent
        self.cpu.add("overlay", spent)
        shown, failed = self.display.show(self._out, frame.seq)
        if failed:
            self.counters.display_errors += 1
            if not shown:
                return
        now = time.monotonic_ns()
        self.counters.displayed += 1
        self.display_rate.tick(now)
        self.latency.add("display", (now - frame.t_acquired_ns) / 1e6)
        if result is not None and result.result_id != self._last_shown_id:
            # First frame on screen carrying this result: acquisition-to-eye latency of the AI.
            self._last_shown_id = result.result_id
            self.latency.add("result_on_screen", (now - result.times.t_acquired_ns) / 1e6)
