"""What a run leaves behind: its folder, the results file, and the JSON report with its figures.

The report says what was and was not written: an output is named only when its file exists and
holds something; ``outputs.notes`` says why one is missing or cut short (docs/reliability.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import psutil

from edge import __version__
from edge.atomic_file import atomic_write
from edge.config import Config
from edge.errors import ConfigError
from edge.frames import Frame
from edge.inference.chain import ModelSlot
from edge.results import Result
from edge.runtime.pipeline import Pipeline
from edge.sources.base import SourceInfo

log = logging.getLogger(__name__)


@dataclass
class RunOutputs:
    run_dir: Path
    video: Path | None = None
    results: Path | None = None
    snapshots: Path | None = None
    report: Path | None = None
    report_error: str | None = None  # why the report could not be written
    notes: dict[str, str] = field(default_factory=dict)  # output -> why it is missing or cut short
    display: dict[str, Any] = field(default_factory=dict)  # window or not, and why


def check_report_path(path: Path) -> None:
    """Refuse, before anything runs, a report path the run could not write at its end: a folder,
    or a file in a folder that does not exist (it is not made for you: a typo would go unseen)."""
    if path.is_dir():
        raise ConfigError(f"--report {path}: is a directory; name a file, e.g. {path / 'report.json'}")
    parent = path.parent
    if not parent.exists():
        raise ConfigError(f"--report {path}: folder {parent} does not exist (create it, or name another)")
    if not parent.is_dir():
        raise ConfigError(f"--report {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--report {path}: folder {parent} is not writable by this user")


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
    """A result handler: each result as one JSON line, flushed per line so a crash loses at most one.

    Expendable: on a full disk the runtime stops it (the outbox keeps the results that matter).
    """

    name = "results"
    expendable = True

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lines = 0
        self._fh: IO[str] | None = None  # opened at the first result: a run without one leaves no file

    def __call__(self, frame: Frame | None, result: Result) -> None:
        if self._fh is None:
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
        self._fh.flush()
        self.lines += 1

    def close(self) -> None:
        if self._fh is None:
            return
        try:
            self._fh.close()
        except OSError as exc:  # the last line did not fit: what was flushed before stays
            log.error("closing %s: %s", self.path, exc)


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
        "reason": pipeline.reason,
        "error": str(pipeline.error) if pipeline.error else None,
        "failure": pipeline.failure.to_dict() if pipeline.failure else None,
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
        "chain": pipeline.chain.report(),
        "elapsed_s": round(elapsed, 3),
        "model_load_s": round(load_s, 3),
        "fps": {
            "source": c.acquired / elapsed,
            "ai": c.inferred / elapsed,
            "display": c.displayed / elapsed,
        },
        "latency_ms": pipeline.latency.summary(),
        # ms of CPU per frame by stage (edge/runtime/cpu.py), per frame the source gave
        "cpu": pipeline.cpu.report(c.acquired + pipeline.stale_at_source),
        "live": {
            "max_age_ms": pipeline.max_age_ns / 1e6,
            "stale_dropped": pipeline.stale_dropped,
            "at_source": pipeline.stale_at_source,
            "at_display": pipeline.stale_at_display,
        },
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
            "notes": dict(outputs.notes),
        },
        "display": dict(outputs.display),
        "health": pipeline.stages.report(),
        "pid": os.getpid(),
        "outbox": outbox,
        "sync": sync if sync is not None else {"enabled": False},
    }


def settle_outputs(outputs: RunOutputs, sinks: Sequence[object], health: dict[str, Any]) -> None:
    """After the run: name only the outputs that exist and hold something, and say why the others
    do not, or are cut short. ``sinks``: every display sink the run had (a fallback video too);
    ``health``: the StageMonitor's report (what was stopped, and why)."""
    stages = health["stages"]

    def why(stage: str, default: str) -> str:
        s = stages.get(stage, {})
        return str(s.get("stopped") or s.get("last_error") or default)

    video = next((s for s in sinks if getattr(s, "name", None) == "video"), None)
    if video is not None:
        path, frames = getattr(video, "path", outputs.video), getattr(video, "frames_written", 0)
        failure = getattr(video, "failure", None)
        stopped = stages.get("video", {}).get("stopped")
        outputs.video = path
        if not frames or path is None or not path.exists():
            outputs.video = None
            outputs.notes["video"] = f"not written: {failure or why('video', 'no frame reached it')}"
        elif failure is not None or stopped:
            outputs.notes["video"] = f"cut short after {frames} frames: {stopped or failure}"
    if outputs.results is not None:
        stopped = stages.get("results", {}).get("stopped")
        if not outputs.results.exists():
            outputs.notes["results"] = f"not written: {why('results', 'no result reached it')}"
            outputs.results = None
        elif stopped:
            outputs.notes["results"] = f"cut short: {stopped}"
    snaps = outputs.snapshots
    if snaps is not None and not (snaps.is_dir() and any(snaps.iterdir())):
        outputs.notes["snapshots"] = f"none saved: {why('snapshots', 'no frame reached them')}"
        outputs.snapshots = None
    elif snaps is not None and stages.get("snapshots", {}).get("stopped"):
        outputs.notes["snapshots"] = f"cut short: {stages['snapshots']['stopped']}"


def write_report(report: dict[str, Any], path: Path) -> None:
    """Whole or not at all (a temporary file, fsynced, renamed over): a full disk leaves no torn
    report. Raises OSError naming ``path`` when it cannot be written."""
    try:
        atomic_write(path, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the run report {path}: {exc.strerror or exc}") from exc
