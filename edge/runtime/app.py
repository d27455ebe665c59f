"""Wire a Config into a running Pipeline, and turn the run into a report.

Kept apart from the CLI so the bench and the tests build exactly what ``edge run`` builds.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import IO, Any

import psutil

from edge import __version__
from edge.config import Config
from edge.inference.base import SessionOptions
from edge.inference.model import LoadedModel
from edge.render.display import Sink, build_sinks
from edge.results import Result
from edge.runtime.pipeline import ModelSlot, Pipeline
from edge.sources import Source, SourceInfo, open_source
from edge.sync.recorder import OutboxRecorder, open_recorder
from edge.sync.uplink import start_uplink

log = logging.getLogger(__name__)


class JsonlResultWriter:
    """Appends each result as one JSON line, flushed per line so a crash loses at most one."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("a", encoding="utf-8")

    def __call__(self, result: Result) -> None:
        self._fh.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def hud_lines(*providers: Callable[[], str | None] | None) -> Callable[[], str | None] | None:
    """One HUD extra line from several providers (the source's link state, the outbox's)."""
    live = [p for p in providers if p is not None]
    if not live:
        return None

    def text() -> str | None:
        return " | ".join(t for t in (p() for p in live) if t) or None

    return text


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


@dataclass
class RunOutputs:
    run_dir: Path
    video: Path | None = None
    results: Path | None = None
    snapshots: Path | None = None
    report: Path | None = None
    files: dict[str, str] = field(default_factory=dict)


def load_models(config: Config) -> list[ModelSlot]:
    options = SessionOptions(providers=config.inference.providers, threads=config.inference.threads)
    slots = []
    for mc in config.models:
        if not mc.enabled:
            continue
        model = LoadedModel(
            config.model_dir(mc),
            precision=mc.precision,
            backend=mc.backend,
            options=options,
            warmup_runs=config.inference.warmup_runs,
        )
        slots.append(ModelSlot(model=model, config=mc))
    return slots


def new_run_dir(base: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = base / stamp
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = base / f"{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


@contextmanager
def stop_on_signals(pipeline: Pipeline) -> Iterator[None]:
    """SIGINT/SIGTERM ask the pipeline to stop; a second SIGINT falls back to the default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        pipeline.stop()
        signal.signal(signum, signal.SIG_DFL)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(
    config: Config,
    *,
    headless: bool = False,
    max_frames: int | None = None,
    report_path: Path | None = None,
    source: Source | None = None,
) -> tuple[dict[str, Any], RunOutputs]:
    """Run the pipeline to the end; return the report (also written to disk) and the outputs."""
    # Input and models are checked before anything is written, so a bad file or a tampered model
    # leaves no empty run folder behind; everything opened is closed whatever happens.
    with PeakRss() as rss, ExitStack() as opened:
        t_start = time.monotonic()
        src = source or open_source(config.source.url)
        src.open()  # the replay clock starts at the first read, so opening early costs nothing
        opened.callback(src.close)
        slots = load_models(config)
        # The outbox keeps every result (schema v2) until the broker acknowledges it.
        recorder: OutboxRecorder | None = None
        piped: object = src  # what the pipeline reads: the source, tapped when thumbnails are on
        if config.outbox.enabled:
            recorder, piped = open_recorder(config, src)
            opened.callback(recorder.outbox.close)
        uplink = start_uplink(config, recorder.outbox if recorder else None)  # docs/sync.md
        if uplink is not None:
            opened.callback(uplink.stop)  # before the outbox closes (callbacks run last-in first)
        t_loaded = time.monotonic()
        outputs = RunOutputs(run_dir=new_run_dir(config.output.dir))
        sinks = _sinks(config, headless, outputs)
        for sink in sinks:
            opened.callback(sink.close)
        handlers: list[JsonlResultWriter] = []
        if config.output.results_jsonl:
            outputs.results = outputs.run_dir / "results.jsonl"
            handlers.append(JsonlResultWriter(outputs.results))
            opened.callback(handlers[0].close)
        pipeline = Pipeline(
            piped,
            slots,
            sinks,
            config.pipeline,
            result_handlers=[*handlers, *([recorder] if recorder else [])],
            status=getattr(src, "status_text", None),
            hud_extra=hud_lines(
                getattr(src, "hud_text", None),
                recorder.hud_text if recorder else None,
                uplink.status_text if uplink else None,
            ),
            read_timeout_s=config.source.read_timeout_s,
        )
        log.info("running %s; stop with Ctrl-C", src.info.url)
        with stop_on_signals(pipeline):
            pipeline.run(max_frames=max_frames)
        info = src.info  # before the source closes: a probe's link figures go with it
        if uplink is not None:
            uplink.stop()  # commits the last PUBACKs, says "offline"; its state goes in the report
        outbox_report = recorder.report() if recorder else None  # before the outbox closes
        sync_report = uplink.state().to_dict() if uplink else {"enabled": False}
    report = build_report(
        config, pipeline, info, slots, outputs, peak_rss=rss.peak, load_s=t_loaded - t_start
    )
    report["outbox"] = outbox_report
    report["sync"] = sync_report
    outputs.report = report_path or outputs.run_dir / "report.json"
    outputs.report.parent.mkdir(parents=True, exist_ok=True)
    outputs.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report, outputs


def _sinks(config: Config, headless: bool, outputs: RunOutputs) -> list[Sink]:
    d = config.display
    video = outputs.run_dir / "overlay.mp4"
    snaps = outputs.run_dir / "snapshots"
    sinks = build_sinks(
        list(d.sinks),
        headless=headless,
        video_path=video,
        snapshot_dir=snaps,
        snapshot_every_s=d.snapshot_every_s,
        title=d.title,
        fourcc=d.video_codec,
    )
    names = {s.name for s in sinks}
    outputs.video = video if "video" in names else None
    outputs.snapshots = snaps if "snapshots" in names else None
    return sinks


def build_report(
    config: Config,
    pipeline: Pipeline,
    info: SourceInfo,
    slots: list[ModelSlot],
    outputs: RunOutputs,
    *,
    peak_rss: int,
    load_s: float,
) -> dict[str, Any]:
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
        "pipeline": {**config.pipeline.model_dump(), "inference_policy_used": pipeline.inference_policy},
        "outputs": {
            "run_dir": str(outputs.run_dir),
            "video": str(outputs.video) if outputs.video else None,
            "results": str(outputs.results) if outputs.results else None,
            "snapshots": str(outputs.snapshots) if outputs.snapshots else None,
        },
        "pid": os.getpid(),
    }

