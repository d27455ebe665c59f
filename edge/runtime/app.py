"""The composition root: wire a Config into a running Pipeline, and the run into its report.

Kept apart from the CLI so the bench and the tests build exactly what ``edge run`` builds.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from edge.config import Config
from edge.inference.base import SessionOptions
from edge.inference.chain import ModelChain, ModelSlot
from edge.inference.model import LoadedModel
from edge.render.display import Sink, build_sinks
from edge.runtime.pipeline import Pipeline
from edge.runtime.ports import AlarmReporter, HudLines, ResultHandler, StatusReporter
from edge.runtime.report import (
    JsonlResultWriter,
    PeakRss,
    RunOutputs,
    build_report,
    new_run_dir,
    write_report,
)
from edge.sources import Source, open_source
from edge.sync.recorder import OutboxRecorder, open_recorder
from edge.sync.uplink import start_uplink

log = logging.getLogger(__name__)


def load_models(config: Config) -> list[ModelSlot]:
    """The enabled models of ``config``, loaded and warm, in the configured order."""
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
        if config.outbox.enabled:
            recorder = open_recorder(config)
            opened.callback(recorder.outbox.close)
        uplink = start_uplink(config, recorder.outbox if recorder else None)  # docs/sync.md
        if recorder is not None:
            recorder.queue_on_hud = uplink is None  # with an uplink, its sync line shows the queue
        if uplink is not None:
            opened.callback(uplink.stop)  # before the outbox closes (callbacks run last-in first)
        t_loaded = time.monotonic()
        outputs = RunOutputs(run_dir=new_run_dir(config.output.dir))
        sinks = _sinks(config, headless, outputs)
        for sink in sinks:
            opened.callback(sink.close)
        handlers: list[ResultHandler] = []
        if config.output.results_jsonl:
            outputs.results = outputs.run_dir / "results.jsonl"
            writer = JsonlResultWriter(outputs.results)
            opened.callback(writer.close)
            handlers.append(writer)
        if recorder is not None:
            handlers.append(recorder)
        # HUD line, in this order: the source's own (a probe's battery), the outbox's, sync's.
        parts = (src, recorder, uplink)
        pipeline = Pipeline(
            src,
            ModelChain(slots),
            sinks,
            config.pipeline,
            result_handlers=handlers,
            alarm=src if isinstance(src, AlarmReporter) else None,
            status=HudLines([p for p in parts if isinstance(p, StatusReporter)]),
            handler_frames=32 if recorder and recorder.thumbnails else 0,  # only thumbnails draw on them
            read_timeout_s=config.source.read_timeout_s,
        )
        log.info("running %s; stop with Ctrl-C", src.info.url)
        with stop_on_signals(pipeline):
            pipeline.run(max_frames=max_frames)
        info = src.info  # before the source closes: a probe's link figures go with it
        if uplink is not None:
            uplink.stop()  # commits the last PUBACKs, says "offline"; its state goes in the report
        outbox_report = recorder.report() if recorder else None  # before the outbox closes
        sync_report = uplink.state().to_dict() if uplink else None
    report = build_report(
        config, pipeline, info, slots, outputs, peak_rss=rss.peak, load_s=t_loaded - t_start,
        outbox=outbox_report, sync=sync_report,
    )  # fmt: skip
    outputs.report = report_path or outputs.run_dir / "report.json"
    write_report(report, outputs.report)
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
