"""The loop's scheduling: every frame displayed, inference on the newest, back-pressure, stop, gating.

One route under both inference policies: acquisition feeds the display and inference, and the
display pairs each frame with a result (the newest under "latest", its own under "every")."""

from __future__ import annotations

import errno
import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge.config import GateConfig, ModelConfig, PipelineConfig
from edge.frames import Frame
from edge.inference.chain import ModelChain, ModelSlot
from edge.inference.model import LoadedModel, ModelOutput
from edge.render.display import DisplayError
from edge.results import ModelInfo, Quality, Result
from edge.runtime.failures import FailureBudget
from edge.runtime.handoff import FrameQueue, InferencePolicy
from edge.runtime.pipeline import Pipeline
from edge.sources.base import SourceInfo


class ListSource:
    """Frames from memory at a fixed period, timestamped at their scheduled time like a live probe."""

    def __init__(self, n: int, period_s: float = 0.0, shape: tuple[int, ...] = (48, 64, 3)) -> None:
        self.n, self.period_s, self.shape = n, period_s, shape
        self.i = 0
        self.closed = False
        self._t0 = 0
        self.info = SourceInfo(url="list://", kind="list", fps=1 / period_s if period_s else None)

    def open(self) -> None:
        self._t0 = time.monotonic_ns()

    @property
    def eof(self) -> bool:
        return self.i >= self.n

    def read(self, timeout: float | None = None) -> Frame | None:
        if self.eof:
            return None
        due = self._t0 + int(self.i * self.period_s * 1e9)
        wait = (due - time.monotonic_ns()) / 1e9
        if wait > 0:
            if timeout is not None and wait > timeout:
                time.sleep(timeout)
                return None
            time.sleep(wait)
        img = np.full(self.shape, self.i % 256, np.uint8)
        f = Frame(image=img, seq=self.i, t_acquired_ns=max(due, self._t0), source_id="list")
        self.i += 1
        return f

    def close(self) -> None:
        self.closed = True


class FakeModel:
    """Test double with LoadedModel's per-frame surface: a fixed cost, a fixed answer."""

    def __init__(
        self, name: str, cost_s: float = 0.0, label: str = "ok", fail_on: set[int] | None = None
    ) -> None:
        self.name, self.cost_s, self.label = name, cost_s, label
        self.fail_on = fail_on or set()
        self.task = "classification"
        self.calls = 0
        self.info = ModelInfo(name, "0", "0" * 64, "fp32", "fake", "none")

        class _M:
            urgent_labels: tuple[str, ...] = ()
            modality: tuple[str, ...] = ("US",)

        self.manifest = _M()

    def infer(self, image: np.ndarray) -> ModelOutput:
        self.calls += 1
        if int(image.flat[0]) in self.fail_on:
            raise ValueError("bad frame")
        t0 = time.monotonic_ns()
        if self.cost_s:
            time.sleep(self.cost_s)
        q = Quality(self.label, 0.9, self.label == "ok", {self.label: 0.9})
        return ModelOutput(q, (), t0, time.monotonic_ns())


class RecordingSink:
    name = "recording"

    def __init__(self, cost_s: float = 0.0) -> None:
        self.seqs: list[int] = []
        self.cost_s = cost_s

    def open(self, width: int, height: int, fps: float) -> None: ...

    def show(self, image: np.ndarray, frame_seq: int) -> None:
        if self.cost_s:
            time.sleep(self.cost_s)
        self.seqs.append(frame_seq)

    def wants_stop(self) -> bool:
        return False

    def close(self) -> None: ...


def slot(model: FakeModel, **cfg: object) -> ModelSlot:
    return ModelSlot(model=model, config=ModelConfig(name=model.name, **cfg))  # type: ignore[arg-type]


def run_pipeline(source: ListSource, models: list[ModelSlot], sink: RecordingSink, **cfg: object):
    results: list[Result] = []

    def handler(frame: Frame | None, result: Result) -> None:
        results.append(result)
        # None only when handlers fell behind (test_handlers_are_handed_the_frame_of_each_result)
        assert frame is None or frame.seq == result.frame_seq, "the frame the result describes"

    chain = ModelChain(models)
    p = Pipeline(source, chain, [sink], PipelineConfig(**cfg), result_handlers=[handler])  # type: ignore[arg-type]
    source.open()
    p.run()
    return p, results


def test_every_frame_is_displayed_and_fast_inference_sees_them_all() -> None:
    src, sink = ListSource(60, period_s=0.005), RecordingSink()
    p, results = run_pipeline(src, [slot(FakeModel("q"))], sink)
    c = p.counters
    assert sink.seqs == list(range(60))
    assert c.acquired == c.displayed == 60
    assert c.inferred + c.skipped == 60
    assert len(results) == c.inferred == c.results
    assert [r.frame_seq for r in results] == sorted(r.frame_seq for r in results)


def test_slow_inference_skips_frames_but_display_keeps_every_one() -> None:
    src, sink = ListSource(40, period_s=0.005), RecordingSink()
    model = FakeModel("slow", cost_s=0.05)
    p, results = run_pipeline(src, [slot(model)], sink)
    c = p.counters
    assert sink.seqs == list(range(40)), "display must not wait for inference"
    assert c.skipped > 0 and c.inferred + c.skipped == 40
    assert model.calls == c.inferred == len(results)
    # Latest wins: after the first, each inferred frame is newer than the previous by more than one.
    seqs = [r.frame_seq for r in results]
    assert seqs == sorted(seqs) and any(b - a > 1 for a, b in itertools.pairwise(seqs))
    assert results[-1].frame_seq == 39, "the newest frame at the end is inferred, not lost"


def test_block_policy_applies_back_pressure_to_acquisition() -> None:
    src, sink = ListSource(30), RecordingSink(cost_s=0.01)  # source as fast as possible, slow display
    p, _ = run_pipeline(src, [slot(FakeModel("q"))], sink, display_queue=2, display_policy="block")
    assert sink.seqs == list(range(30))
    assert p.counters.display_dropped == 0


def test_drop_oldest_policy_keeps_display_live_and_counts_drops() -> None:
    src, sink = ListSource(60), RecordingSink(cost_s=0.01)
    p, _ = run_pipeline(src, [slot(FakeModel("q"))], sink, display_queue=2, display_policy="drop_oldest")
    c = p.counters
    assert c.display_dropped > 0
    assert c.displayed + c.display_dropped == 60
    assert sink.seqs == sorted(sink.seqs) and sink.seqs[-1] == 59


def test_a_bad_frame_does_not_stop_the_loop() -> None:
    src, sink = ListSource(30, period_s=0.004), RecordingSink()
    p, results = run_pipeline(src, [slot(FakeModel("q", fail_on={3, 4, 5}))], sink)
    assert p.counters.displayed == 30
    assert p.counters.inference_errors >= 1
    assert all(r.frame_seq not in {3, 4, 5} for r in results)
    assert results[-1].frame_seq == 29


def test_quality_gates_detection() -> None:
    quality = FakeModel("quality", label="no_contact")
    detector = FakeModel("detector")
    gated = slot(detector, gate=GateConfig(model="quality"))
    p, results = run_pipeline(ListSource(10, period_s=0.004), [gated, slot(quality)], RecordingSink())
    assert detector.calls == 0, "no detection on a frame without probe contact"
    assert quality.calls == p.counters.inferred > 0
    assert all(r.gated for r in results) and p.counters.gated == len(results)

    quality.label = "ok"
    detector.calls = 0
    ok_slots = [slot(detector, gate=GateConfig(model="quality")), slot(quality)]
    _, results = run_pipeline(ListSource(10, period_s=0.004), ok_slots, RecordingSink())
    assert detector.calls == len(results) and not any(r.gated for r in results)


def test_every_n_reuses_the_last_output() -> None:
    model = FakeModel("q")
    _, results = run_pipeline(ListSource(30, period_s=0.004), [slot(model, every_n=3)], RecordingSink())
    assert model.calls == -(-len(results) // 3)


def test_stop_is_prompt_on_an_endless_source() -> None:
    src = ListSource(10**9, period_s=0.01)
    p = Pipeline(src, ModelChain([slot(FakeModel("q", cost_s=0.02))]), [RecordingSink()], PipelineConfig())
    src.open()
    threading.Timer(0.5, p.stop).start()
    t0 = time.monotonic()
    p.run()
    took = time.monotonic() - t0
    assert took < 0.5 + 1.0, f"stop took {took - 0.5:.2f} s after the request"
    assert not any(t.is_alive() for t in p._threads)
    assert p.counters.displayed > 10


def test_real_model_in_the_loop(tiny_classifier: Callable[..., Path]) -> None:
    model = LoadedModel(tiny_classifier())
    src, sink = ListSource(20, period_s=0.004), RecordingSink()
    p, results = run_pipeline(src, [ModelSlot(model=model, config=ModelConfig(name=model.name))], sink)
    assert len(results) == p.counters.inferred > 0
    assert results[0].models[0].provider == "CPUExecutionProvider"
    lat = p.latency.summary()
    for stage in ("e2e", "model", "overhead", "display", "queue_wait"):
        assert lat[stage]["count"] > 0
    assert lat["overhead"]["p50"] >= 0


@pytest.mark.parametrize("policy", ["block", "drop_oldest"])
def test_stop_while_display_is_stuck(policy: str) -> None:
    src, sink = ListSource(10**9), RecordingSink(cost_s=0.2)
    cfg = PipelineConfig(display_queue=1, display_policy=policy)  # type: ignore[arg-type]
    p = Pipeline(src, ModelChain([slot(FakeModel("q"))]), [sink], cfg)
    src.open()
    threading.Timer(0.3, p.stop).start()
    t0 = time.monotonic()
    p.run()
    assert time.monotonic() - t0 < 0.3 + 1.0


def _composed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None]]:
    """Record (frame seq, seq of the result drawn on it) for every composed frame."""
    import edge.runtime.pipeline as pl

    seen: list[tuple[int, int | None]] = []
    real = pl.compose

    def spy(image: np.ndarray, result: Result | None, hud: object, **kw: object) -> np.ndarray:
        seen.append((int(image.flat[0]), None if result is None else result.frame_seq))
        return real(image, result, hud, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pl, "compose", spy)
    return seen


def test_display_sync_puts_a_fast_models_overlay_on_its_own_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _composed(monkeypatch)
    _, results = run_pipeline(
        ListSource(30, period_s=0.01),
        [slot(FakeModel("q", cost_s=0.002))],
        RecordingSink(),
        display_sync_ms=100,
    )
    inferred = {r.frame_seq for r in results}
    own = [(f, r) for f, r in seen if f in inferred]
    assert len(own) >= 20
    assert all(f == r for f, r in own), "each inferred frame is drawn with its own result"


def test_display_sync_never_waits_for_a_slow_model(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _composed(monkeypatch)
    p, _ = run_pipeline(
        ListSource(40, period_s=0.005),
        [slot(FakeModel("slow", cost_s=0.08))],
        RecordingSink(),
        display_sync_ms=50,
    )
    assert p.counters.displayed == 40
    stale = [f for f, r in seen if r is not None and r < f]
    assert len(stale) > 20, "frames go out with the last overlay rather than wait for the busy worker"


def test_every_policy_infers_every_frame_in_order() -> None:
    model = FakeModel("slow", cost_s=0.01)
    src, sink = ListSource(30), RecordingSink()
    p, results = run_pipeline(src, [slot(model)], sink, inference_policy="every")
    assert [r.frame_seq for r in results] == list(range(30))
    assert p.counters.skipped == 0 and sink.seqs == list(range(30))


def test_every_policy_still_stops_promptly() -> None:
    src = ListSource(10**9)
    cfg = PipelineConfig(inference_policy="every")
    p = Pipeline(src, ModelChain([slot(FakeModel("q", cost_s=0.2))]), [RecordingSink()], cfg)
    src.open()
    threading.Timer(0.3, p.stop).start()
    t0 = time.monotonic()
    p.run()
    assert time.monotonic() - t0 < 0.3 + 1.0


def test_every_policy_shows_each_frame_with_its_own_result(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _composed(monkeypatch)
    src, sink = ListSource(25), RecordingSink()
    _, results = run_pipeline(
        src, [slot(FakeModel("q", cost_s=0.003))], sink, inference_policy="every", display_sync_ms=0
    )
    assert len(results) == 25 and sink.seqs == list(range(25))
    assert seen == [(i, i) for i in range(25)]


def test_auto_policy_follows_the_source() -> None:
    from edge.runtime.handoff import resolve_policy

    live = ListSource(1, period_s=0.01)
    flat_out = ListSource(1)
    flat_out.info = SourceInfo(url="list://", kind="list", realtime=False)
    assert resolve_policy("auto", live) == "latest"
    assert resolve_policy("auto", flat_out) == "every"
    assert resolve_policy("latest", flat_out) == "latest"
    assert resolve_policy("auto", flat_out) is InferencePolicy.EVERY
    _, results = run_pipeline(flat_out, [slot(FakeModel("q"))], RecordingSink())
    assert len(results) == 1


def test_an_alarm_is_redrawn_while_no_frame_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _composed(monkeypatch)

    class Stalling(ListSource):
        """Delivers its frames, then nothing (a probe unplugged), until the test stops the run."""

        @property
        def eof(self) -> bool:
            return False

        def read(self, timeout: float | None = None) -> Frame | None:
            if self.i >= self.n:
                time.sleep(timeout or 0.05)
                return None
            return super().read(timeout)

    class Alarm:
        """The source's alarm (as a probe's status_text) as the pipeline reads it."""

        text: str | None = None

        def status_text(self) -> str | None:
            return self.text

    src, sink, alarm = Stalling(5, period_s=0.005), RecordingSink(), Alarm()
    p = Pipeline(src, ModelChain([slot(FakeModel("q"))]), [sink], PipelineConfig(), alarm=alarm)
    src.open()
    threading.Timer(0.3, lambda: setattr(alarm, "text", "probe disconnected")).start()
    threading.Timer(1.3, p.stop).start()
    p.run()
    assert p.counters.displayed == 5, "redraws are not counted as displayed frames"
    assert len(sink.seqs) > 5 and set(sink.seqs[5:]) == {4}, "the last frame is redrawn with the alarm"
    assert all(r is None for _, r in seen[5:]), "no stale quality verdict while nothing is scanned"


# -- one route under both policies -----------------------------------------------------------
@pytest.mark.parametrize("policy", ["latest", "every"])
def test_frames_reach_the_display_from_acquisition_under_either_policy(
    policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    putters: set[str] = set()
    real_put = FrameQueue.put

    def spy(self: FrameQueue[object], item: object) -> None:
        putters.add(threading.current_thread().name)
        real_put(self, item)

    monkeypatch.setattr(FrameQueue, "put", spy)
    src, sink = ListSource(20, period_s=0.002), RecordingSink()
    p, results = run_pipeline(src, [slot(FakeModel("q", cost_s=0.004))], sink, inference_policy=policy)
    assert putters == {"acquire"}, "one route: the display is fed by acquisition alone"
    assert sink.seqs == list(range(20)) and p.inference_policy == policy
    assert [r.frame_seq for r in results] == sorted(r.frame_seq for r in results)


def test_every_policy_waits_for_a_slow_models_own_result(monkeypatch: pytest.MonkeyPatch) -> None:
    # A model slower than the display and the source: "latest" would show stale overlays here.
    seen = _composed(monkeypatch)
    src, sink = ListSource(15, period_s=0.002), RecordingSink()
    p, results = run_pipeline(src, [slot(FakeModel("slow", cost_s=0.02))], sink, inference_policy="every")
    assert [r.frame_seq for r in results] == list(range(15)) and p.counters.skipped == 0
    assert seen == [(i, i) for i in range(15)]


def test_every_policy_with_the_display_behind_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    # Inference runs ahead of a slow display: each frame is still drawn with its own result.
    seen = _composed(monkeypatch)
    src, sink = ListSource(20), RecordingSink(cost_s=0.01)
    _, results = run_pipeline(src, [slot(FakeModel("q"))], sink, inference_policy="every", display_queue=8)
    assert len(results) == 20 and seen == [(i, i) for i in range(20)]


def test_every_policy_shows_a_failed_frame_with_the_last_good_result(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _composed(monkeypatch)
    src, sink = ListSource(10), RecordingSink()
    p, results = run_pipeline(src, [slot(FakeModel("q", fail_on={3, 4}))], sink, inference_policy="every")
    assert p.counters.inference_errors == 2 and len(results) == 8
    assert seen == [(i, {3: 2, 4: 2}.get(i, i)) for i in range(10)]


def test_every_policy_with_drop_oldest_display(monkeypatch: pytest.MonkeyPatch) -> None:
    # The display may drop frames; inference still sees every frame, and what is shown is its own.
    seen = _composed(monkeypatch)
    src, sink = ListSource(40), RecordingSink(cost_s=0.01)
    p, results = run_pipeline(
        src, [slot(FakeModel("q"))], sink,
        inference_policy="every", display_policy="drop_oldest", display_queue=2,
    )  # fmt: skip
    c = p.counters
    assert [r.frame_seq for r in results] == list(range(40)) and c.skipped == 0
    assert c.display_dropped > 0 and c.displayed + c.display_dropped == 40
    assert seen and all(f == r for f, r in seen)


def test_a_failing_handler_does_not_stop_the_others() -> None:
    got: list[int] = []

    def broken(frame: Frame | None, result: Result) -> None:
        raise RuntimeError("handler bug")

    src = ListSource(10, period_s=0.002)
    chain = ModelChain([slot(FakeModel("q"))])
    p = Pipeline(
        src, chain, [RecordingSink()], PipelineConfig(),
        result_handlers=[broken, lambda f, r: got.append(r.frame_seq)],
    )  # fmt: skip
    src.open()
    p.run()
    assert len(got) == p.counters.results > 0


def test_counters_from_the_chain_and_channels() -> None:
    quality = FakeModel("quality", label="no_contact")
    gated = slot(FakeModel("detector"), gate=GateConfig(model="quality"))
    p, results = run_pipeline(ListSource(12, period_s=0.003), [gated, slot(quality)], RecordingSink())
    c = p.counters
    assert c.gated == p.chain.gated_frames == len(results) > 0
    assert c.skipped == p._slot.replaced and c.display_dropped == 0


def test_handlers_are_handed_the_frame_of_each_result() -> None:
    pairs: list[tuple[Frame | None, Result]] = []
    src = ListSource(20, period_s=0.004)
    chain = ModelChain([slot(FakeModel("q"))])
    p = Pipeline(
        src, chain, [RecordingSink()], PipelineConfig(), result_handlers=[lambda f, r: pairs.append((f, r))]
    )
    src.open()
    p.run()
    assert len(pairs) == p.counters.results > 0
    assert all(f is not None and f.seq == r.frame_seq and f.image.flat[0] == r.frame_seq for f, r in pairs)


# -- failures: one mechanism for every stage (edge/runtime/failures.py) ----------------------
class AlwaysFailing(FakeModel):
    def infer(self, image: np.ndarray) -> ModelOutput:
        self.calls += 1
        raise RuntimeError("input shape [1, 3, 64, 64] is not the model's [1, 1, 32, 32]")


class FailingSink(RecordingSink):
    """A sink whose show raises ``exc`` from frame ``after`` on (a writer gone, a disk full)."""

    def __init__(self, name: str, exc: Exception, after: int = 0, expendable: bool = False) -> None:
        super().__init__()
        self.name, self.exc, self.after, self.expendable = name, exc, after, expendable
        self.closed = 0

    def show(self, image: np.ndarray, frame_seq: int) -> None:
        if len(self.seqs) >= self.after:
            raise self.exc
        super().show(image, frame_seq)

    def close(self) -> None:
        self.closed += 1


def _hud_alarms(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import edge.runtime.pipeline as pl

    alarms: list[str] = []
    real = pl.compose

    def spy(image: np.ndarray, result: Result | None, hud: object, **kw: object) -> np.ndarray:
        status = getattr(hud, "status", None)
        if status:
            alarms.append(status)
        return real(image, result, hud, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pl, "compose", spy)
    return alarms


def test_a_model_failing_on_every_frame_raises_the_alarm_then_stops_the_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alarms = _hud_alarms(monkeypatch)
    src, sink = ListSource(10**9, period_s=0.002), RecordingSink()
    budget = FailureBudget(alarm_after=3, max_consecutive=30, budget_s=0)
    p = Pipeline(src, ModelChain([slot(AlwaysFailing("q"))]), [sink], PipelineConfig(), failures=budget)
    src.open()
    with caplog.at_level(logging.ERROR):
        p.run()  # ends by itself: the endless source is not what stops it
    assert p.exit_reason == "failed" and p.failure is not None
    assert (p.failure.stage, p.failure.count) == ("inference", 30)
    assert "is not the model's" in (p.reason or "") and "max_consecutive_failures = 30" in (p.reason or "")
    assert any(a.startswith("INFERENCE FAILING") for a in alarms), "the HUD said so while it ran"
    assert sum(1 for r in caplog.records if r.exc_info) == 1, "one traceback, not one per frame"
    assert p.counters.inference_errors >= 30 and p.counters.displayed > 0


def test_a_failing_sink_costs_the_others_nothing_and_stops_the_run_past_its_budget() -> None:
    src, good = ListSource(10**9, period_s=0.002), RecordingSink()
    broken = FailingSink("broken", DisplayError("cannot write video x.ts with codec 'H264'"))
    budget = FailureBudget(alarm_after=2, max_consecutive=20, budget_s=0)
    p = Pipeline(src, ModelChain([slot(FakeModel("q"))]), [broken, good], PipelineConfig(), failures=budget)
    src.open()
    p.run()
    assert p.exit_reason == "failed" and p.failure is not None and p.failure.stage == "broken"
    assert len(good.seqs) >= 20 and good.seqs == sorted(good.seqs), "the other sink got every frame"
    assert p.counters.displayed == len(good.seqs) and p.counters.display_errors >= 20


def test_a_full_disk_stops_the_recordings_and_the_run_goes_on() -> None:
    full = DisplayError("writing video x.ts failed")
    full.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    video = FailingSink("video", full, after=5, expendable=True)
    screen = RecordingSink()
    written: list[int] = []

    class Jsonl:
        name, expendable, closed = "results", True, 0

        def __call__(self, frame: Frame | None, result: Result) -> None:
            written.append(result.frame_seq)

        def close(self) -> None:
            self.closed += 1

    jsonl, kept = Jsonl(), []
    src = ListSource(40, period_s=0.004)
    budget = FailureBudget(alarm_after=1, max_consecutive=1, budget_s=0)  # any failure would stop it
    p = Pipeline(
        src, ModelChain([slot(FakeModel("q"))]), [video, screen], PipelineConfig(),
        result_handlers=[jsonl, lambda f, r: kept.append(r.frame_seq)], failures=budget,
    )  # fmt: skip
    src.open()
    p.run()
    assert p.exit_reason == "completed", p.reason
    assert screen.seqs == list(range(40)) and video.seqs == list(range(5)) and video.closed == 1
    assert jsonl.closed == 1 and len(written) < len(kept), "the results file stopped, the rest did not"
    assert kept and kept[-1] == 39
    health = p.stages.report()
    assert health["disk_full"].startswith("video: OSError: [Errno 28]")
    assert health["stages"]["video"]["stopped"] and health["stages"]["results"]["stopped"]


def test_a_source_that_raises_on_a_read_is_read_again() -> None:
    class Flaky(ListSource):
        def read(self, timeout: float | None = None) -> Frame | None:
            if self.i in (3, 7) and not getattr(self, f"failed_{self.i}", False):
                setattr(self, f"failed_{self.i}", True)
                raise OSError(5, "Input/output error")
            return super().read(timeout)

    src, sink = Flaky(12, period_s=0.002), RecordingSink()
    p = Pipeline(src, ModelChain([slot(FakeModel("q"))]), [sink], PipelineConfig())
    src.open()
    p.run()
    assert p.exit_reason == "completed" and sink.seqs == list(range(12))
    assert p.counters.source_errors == 2 and p.stages.stage("acquisition").failures == 2


def test_a_stage_that_dies_of_a_bug_ends_the_run_as_an_error() -> None:
    src = ListSource(10**9, period_s=0.002)
    p = Pipeline(src, ModelChain([slot(FakeModel("q"))]), [RecordingSink()], PipelineConfig())

    def bug(*args: object) -> None:
        raise AttributeError("a bug outside the per-frame guard")

    p._record_inference = bug  # type: ignore[method-assign]
    src.open()
    p.run()  # returns rather than hang or raise: the caller writes the report
    assert p.exit_reason == "error" and isinstance(p.error, AttributeError)
    assert "a bug outside" in (p.reason or "")
    assert not any(t.is_alive() for t in p._threads)


def test_a_short_run_whose_sink_never_worked_did_not_complete() -> None:
    src = ListSource(5, period_s=0.002)
    never = FailingSink("video", DisplayError("cannot write video x.ts"))
    p = Pipeline(src, ModelChain([slot(FakeModel("q"))]), [never, RecordingSink()], PipelineConfig())
    src.open()
    p.run()
    assert p.exit_reason == "failed" and p.failure is not None
    assert (p.failure.stage, p.failure.why) == ("video", "never succeeded")


def test_the_last_frame_of_a_finite_source_is_shown_with_its_own_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A still: one frame, then the end. Its analysis is slower than display_sync_ms; nothing later
    # will come to show the result, so the display waits for it (it showed "quality: --" before).
    seen = _composed(monkeypatch)
    src = ListSource(1, period_s=0.01)
    src.info = SourceInfo(url="list://", kind="list", fps=100.0, frame_count=1)
    p, results = run_pipeline(src, [slot(FakeModel("slow", cost_s=0.1))], RecordingSink(), display_sync_ms=8)
    assert p.inference_policy == "latest" and len(results) == 1
    assert seen == [(0, 0)]


def test_stop_says_why() -> None:
    src = ListSource(10**9, period_s=0.005)
    p = Pipeline(src, ModelChain([slot(FakeModel("q"))]), [RecordingSink()], PipelineConfig())
    src.open()
    threading.Timer(0.2, p.stop, args=("received SIGTERM",)).start()
    p.run()
    assert (p.exit_reason, p.reason) == ("stopped", "received SIGTERM")
    src2 = ListSource(3, period_s=0.002)
    p2, _ = run_pipeline(src2, [slot(FakeModel("q"))], RecordingSink())
    assert (p2.exit_reason, p2.reason) == ("completed", "the source ended")
