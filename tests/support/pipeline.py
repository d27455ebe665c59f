"""The pipeline tests' doubles: a source of frames from memory, a model with a fixed cost and
answer, a sink that records what it was shown, and a spy on what the display composed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge.config import ModelConfig, PipelineConfig
from edge.frames import Frame
from edge.inference.chain import ModelChain, ModelSlot
from edge.inference.model import ModelOutput
from edge.results import ModelInfo, Quality, Result
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


def composed_frames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None]]:
    """Record (frame seq, seq of the result drawn on it) for every composed frame."""
    import edge.runtime.pipeline as pl

    seen: list[tuple[int, int | None]] = []
    real = pl.compose

    def spy(image: np.ndarray, result: Result | None, hud: object, **kw: object) -> np.ndarray:
        seen.append((int(image.flat[0]), None if result is None else result.frame_seq))
        return real(image, result, hud, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pl, "compose", spy)
    return seen
