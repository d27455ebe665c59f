"""The loop's scheduling: every frame displayed, inference on the newest, back-pressure, stop, gating.

One route under both inference policies: acquisition feeds the display and inference, and the
display pairs each frame with a result (the newest under "latest", its own under "every")."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.config import GateConfig, ModelConfig, PipelineConfig
from edge.frames import Frame
from edge.inference.chain import ModelChain, ModelSlot
from edge.inference.model import LoadedModel
from edge.results import Result
from edge.runtime.handoff import FrameQueue, InferencePolicy
from edge.runtime.pipeline import Pipeline
from edge.sources.base import SourceInfo
from tests.support.pipeline import FakeModel, ListSource, RecordingSink, composed_frames, run_pipeline, slot


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


def test_display_sync_puts_a_fast_models_overlay_on_its_own_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = composed_frames(monkeypatch)
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
    seen = composed_frames(monkeypatch)
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
    seen = composed_frames(monkeypatch)
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
    seen = composed_frames(monkeypatch)

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
    seen = composed_frames(monkeypatch)
    src, sink = ListSource(15, period_s=0.002), RecordingSink()
    p, results = run_pipeline(src, [slot(FakeModel("slow", cost_s=0.02))], sink, inference_policy="every")
    assert [r.frame_seq for r in results] == list(range(15)) and p.counters.skipped == 0
    assert seen == [(i, i) for i in range(15)]


def test_every_policy_with_the_display_behind_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    # Inference runs ahead of a slow display: each frame is still drawn with its own result.
    seen = composed_frames(monkeypatch)
    src, sink = ListSource(20), RecordingSink(cost_s=0.01)
    _, results = run_pipeline(src, [slot(FakeModel("q"))], sink, inference_policy="every", display_queue=8)
    assert len(results) == 20 and seen == [(i, i) for i in range(20)]


def test_every_policy_shows_a_failed_frame_with_the_last_good_result(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = composed_frames(monkeypatch)
    src, sink = ListSource(10), RecordingSink()
    p, results = run_pipeline(src, [slot(FakeModel("q", fail_on={3, 4}))], sink, inference_policy="every")
    assert p.counters.inference_errors == 2 and len(results) == 8
    assert seen == [(i, {3: 2, 4: 2}.get(i, i)) for i in range(10)]


def test_every_policy_with_drop_oldest_display(monkeypatch: pytest.MonkeyPatch) -> None:
    # The display may drop frames; inference still sees every frame, and what is shown is its own.
    seen = composed_frames(monkeypatch)
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
