"""Freshness under overload ([live] max_age_ms): a live source's backlog is dropped, not shown late,
and counted; the newest frame is always shown; a replay analysed flat out drops nothing. The CPU
ledger's figures come out of the same runs and add up."""

from __future__ import annotations

import time

import numpy as np

from edge.config import PipelineConfig
from edge.frames import Frame
from edge.inference.chain import ModelChain
from edge.runtime.cpu import STAGES
from edge.runtime.pipeline import Pipeline
from edge.sources.base import SourceInfo
from tests.support.pipeline import FakeModel, RecordingSink, slot


class BacklogSource:
    """A live source that comes back from a stall: ``backlog`` frames captured ``late_s`` ago are
    waiting at once, then fresh frames follow every ``period_s``."""

    def __init__(self, backlog: int, fresh: int, late_s: float = 0.3, period_s: float = 0.01) -> None:
        self.backlog, self.n, self.late_s, self.period_s = backlog, backlog + fresh, late_s, period_s
        self.i = 0
        self.info = SourceInfo(url="backlog://", kind="test", fps=1 / period_s, realtime=True)
        self._t0 = 0

    def open(self) -> None:
        self._t0 = time.monotonic_ns()

    @property
    def eof(self) -> bool:
        return self.i >= self.n

    def read(self, timeout: float | None = None) -> Frame | None:
        if self.eof:
            return None
        if self.i < self.backlog:  # all waiting already, captured during the stall
            t = self._t0 - int(self.late_s * 1e9) + self.i * 1000
        else:
            t = self._t0 + int((self.i - self.backlog + 1) * self.period_s * 1e9)
            wait = (t - time.monotonic_ns()) / 1e9
            if wait > 0:
                if timeout is not None and wait > timeout:
                    time.sleep(timeout)
                    return None
                time.sleep(wait)
        frame = Frame(image=np.full((48, 64, 3), self.i % 256, np.uint8), seq=self.i, t_acquired_ns=t,
                      source_id="backlog")  # fmt: skip
        self.i += 1
        return frame

    def close(self) -> None: ...


def _run(source: BacklogSource, max_age_ms: float, policy: str = "latest") -> tuple[Pipeline, RecordingSink]:
    sink = RecordingSink()
    p = Pipeline(source, ModelChain([slot(FakeModel("m"))]), [sink],
                 PipelineConfig(inference_policy=policy), max_age_ms=max_age_ms)  # type: ignore[arg-type]  # fmt: skip
    source.open()
    p.run()
    return p, sink


def test_a_stale_backlog_is_dropped_at_the_source_and_counted() -> None:
    p, sink = _run(BacklogSource(backlog=10, fresh=20), max_age_ms=50)
    # Nine of the ten stale frames had a newer one waiting behind them; the tenth was the newest.
    # (At least nine: on a loaded box a fresh frame may go stale behind a newer one too.)
    assert p.stale_at_source >= 9
    assert p.counters.acquired + p.stale_at_source == 30, "every frame is read, acquired or dropped"
    c = p.counters.as_dict()
    assert c["stale_at_source"] == p.stale_at_source and c["stale_at_display"] == p.stale_at_display
    assert p.counters.displayed + p.stale_at_display == p.counters.acquired, "each frame shown or counted"
    assert p.stale_dropped == p.stale_at_source + p.stale_at_display and sink.seqs[-1] == 29
    assert not set(range(9)) & set(sink.seqs), "the stale backlog never reaches the screen"
    assert all(later > earlier for earlier, later in zip(sink.seqs, sink.seqs[1:]))


def test_without_a_budget_every_frame_is_shown_however_late() -> None:
    p, sink = _run(BacklogSource(backlog=10, fresh=10), max_age_ms=0)
    assert p.stale_dropped == 0 and p.max_age_ns == 0
    assert sink.seqs == list(range(20))


def test_a_replay_analysed_flat_out_never_drops_for_age() -> None:
    p, sink = _run(BacklogSource(backlog=10, fresh=5), max_age_ms=50, policy="every")
    assert p.max_age_ns == 0 and p.stale_dropped == 0
    assert sink.seqs == list(range(15))


def test_cpu_per_stage_adds_up_to_the_process_total() -> None:
    p, _ = _run(BacklogSource(backlog=0, fresh=30), max_age_ms=50)
    ns = p.cpu.stages_ns()
    assert set(ns) == {*STAGES, "total"}
    assert sum(v for k, v in ns.items() if k != "total") == ns["total"] > 0
    assert ns["acquisition"] > 0 and ns["pre_post"] > 0 and ns["overlay"] > 0
    report = p.cpu.report(p.counters.acquired)
    assert report["frames"] == 30 and set(report["ms_per_frame"]) == {*STAGES, "total"}
    assert report["ms_per_frame"]["model"] == 0.0, "a model without a session has no session time"
