"""The loop's failures: one mechanism for every stage (``edge.runtime.failures``): a model, a sink,
a full disk, a source that raises, a stage that dies of a bug; an alarm, then an honest end of run."""

from __future__ import annotations

import errno
import logging
import threading

import numpy as np
import pytest

from edge.config import PipelineConfig
from edge.frames import Frame
from edge.inference.chain import ModelChain
from edge.inference.model import ModelOutput
from edge.render.display import DisplayError
from edge.results import Result
from edge.runtime.failures import FailureBudget
from edge.runtime.pipeline import Pipeline
from edge.sources.base import SourceInfo
from tests.support.pipeline import FakeModel, ListSource, RecordingSink, composed_frames, run_pipeline, slot


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
    seen = composed_frames(monkeypatch)
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
