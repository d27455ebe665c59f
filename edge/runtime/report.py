"""What a run leaves behind: its folder, the results file, and the JSON report with its figures."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import psutil

from edge import __version__
from edge.config import Config
from edge.frames import Frame
from edge.inference.chain import ModelSlot
from edge.results import Result
from edge.runtime.pipeline import Pipeline
from edge.sources.base import SourceInfo


@dataclass
class RunOutputs:
    run_dir: Path
    video: Path | None = None
    results: Path | None = None
    snapshots: Path | None = None
    report: Path | None = None
    files: dict[str, str] = field(default_factory=dict)


def new_run_dir(base: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = base / stamp
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = base / f"{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


class JsonlResultWriter:
    """A result handler: each result as one JSON line, flushed per line so a crash loses at most one."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("a", encoding="utf-8")

    def __call__(self, frame: Frame | None, result: Result) -> None:
        self._fh.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class PeakRss:
    """Samples this process's resident memory in the background; the peak goes in the report."""

    def __init__(self, every_s: float = 0.25) -> None:
        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(every_s,), name="rss", daemon=True)

    def _loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.sample()

    def sample(self) -> None:
        self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.sample()


def build_report(
    config: Config,
    pipeline: Pipeline,
    info: SourceInfo,
    slots: list[ModelSlot],
    outputs: RunOutputs,
    *,
    peak_rss: int,
    load_s: float,
    outbox: dict[str, Any] | None = None,
    sync: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report of a run (``edge run --report``); ``slots`` in the configured order."""
    c = pipeline.counters
    elapsed = pipeline.elapsed_s()
    return {
        "edge_version": __version__,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "exit": pipeline.exit_reason,
        "error": str(pipeline.error) if pipeline.error else None,
        "source": {
            "url": info.url,
            "kind": info.kind,
            "native_fps": info.fps,
            "realtime": info.realtime,
            "extra": info.extra,
        },
        "models": [
            {
                **s.model.info.to_dict(),
                "task": s.model.task,
                "file": s.model.path.name,
                "gate": s.config.gate.model_dump() if s.config.gate else None,
            }
            for s in slots
        ],
        "counters": c.as_dict(),
        "elapsed_s": round(elapsed, 3),
        "model_load_s": round(load_s, 3),
        "fps": {
            "source": c.acquired / elapsed,
            "ai": c.inferred / elapsed,
            "display": c.displayed / elapsed,
        },
        "latency_ms": pipeline.latency.summary(),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "pipeline": {
            **config.pipeline.model_dump(),
            "inference_policy_used": pipeline.inference_policy.value,
        },
        "outputs": {
            "run_dir": str(outputs.run_dir),
            "video": str(outputs.video) if outputs.video else None,
            "results": str(outputs.results) if outputs.results else None,
            "snapshots": str(outputs.snapshots) if outputs.snapshots else None,
        },
        "pid": os.getpid(),
        "outbox": outbox,
        "sync": sync if sync is not None else {"enabled": False},
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
