"""The composition root: wire a Config into a running Pipeline, and the run into its report.

Kept apart from the CLI so the bench and the tests build exactly what ``edge run`` builds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from edge.config import Config
from edge.inference.base import SessionOptions
from edge.inference.chain import ModelChain, ModelSlot
from edge.inference.model import LoadedModel
from edge.inference.preprocess import refit_in_background
from edge.render.display import Sink, VideoFileSink, build_sinks, display_available, recording_suffix
from edge.render.encoder import prestart as prestart_encoder
from edge.runtime.failures import FailureBudget, StageFailure
from edge.runtime.handoff import InferencePolicy
from edge.runtime.health import Deadlines, Health
from edge.runtime.pipeline import Pipeline
from edge.runtime.ports import AlarmReporter, HudLines, ResultHandler, StatusReporter
from edge.runtime.report import (
    JsonlResultWriter,
    PeakRss,
    RunOutputs,
    build_report,
    check_report_path,
    new_run_dir,
    settle_outputs,
    write_report,
)
from edge.runtime.signals import RunStopper, stop_on_signals
from edge.sources import Source, SourceInfo, open_source
from edge.sync.recorder import OutboxRecorder, open_recorder
from edge.sync.uplink import Uplink, start_uplink

log = logging.getLogger(__name__)


def load_models(config: Config) -> list[ModelSlot]:
    """The enabled models of ``config``, loaded and warm, in the configured order."""
    options = SessionOptions(providers=config.inference.providers, threads=config.inference.threads)
    slots = []
    for mc in config.models:
        if not mc.enabled:
            continue
        with refit_in_background():  # live: the imaging-area search off the frame's path
            model = LoadedModel(
                config.model_dir(mc),
                precision=mc.precision,
                backend=mc.backend,
                options=options,
                warmup_runs=config.inference.warmup_runs,
                fault_min_confidence=mc.fault_min_confidence,
            )
        slots.append(ModelSlot(model=model, config=mc))
    return slots


def run(
    config: Config,
    *,
    headless: bool = False,
    max_frames: int | None = None,
    report_path: Path | None = None,
    source: Source | None = None,
    stopper: RunStopper | None = None,
) -> tuple[dict[str, Any], RunOutputs]:
    """Run the pipeline to the end; return the report (also written to disk) and the outputs.

    Once the run has started the report is always written, whatever a stage did (exit "failed"
    or "error"); when it cannot be written, ``outputs.report`` is None and ``report_error`` says
    why. Before that, a bad path, input or model raises an EdgeError and leaves nothing behind.
    ``stopper``: one whose signal handlers the caller installed already (``edge run`` does, before
    the imports); without one, SIGINT and SIGTERM are handled here for the length of the run.
    """
    if report_path is not None:
        check_report_path(report_path)
    if stopper is not None:
        return _run(config, headless, max_frames, report_path, source, stopper)
    stopper = RunStopper()
    with stop_on_signals(stopper):
        return _run(config, headless, max_frames, report_path, source, stopper)


def _run(
    config: Config,
    headless: bool,
    max_frames: int | None,
    report_path: Path | None,
    source: Source | None,
    stopper: RunStopper,
) -> tuple[dict[str, Any], RunOutputs]:
    # Input and models are checked before anything is written, so a bad file or a tampered model
    # leaves no empty run folder behind; everything opened is closed whatever happens.
    with PeakRss() as rss, ExitStack() as opened:
        t_start = time.monotonic()
        if "video" in config.display.sinks or (headless and "window" in config.display.sinks):
            prestart_encoder()  # the recording's encoder process warms while the models load
        src = source or open_source(config.source.url)
        src.open()  # the replay clock starts at the first read, so opening early costs nothing
        opened.callback(_closing(src.close, "the source"))
        slots = load_models(config)
        # The outbox keeps every result (schema v3) until the broker acknowledges it.
        recorder: OutboxRecorder | None = None
        if config.outbox.enabled:
            recorder = open_recorder(config)
            opened.callback(_closing(recorder.outbox.close, "the outbox"))
        uplink = start_uplink(config, recorder.outbox if recorder else None)  # docs/sync.md
        if recorder is not None:
            recorder.queue_on_hud = uplink is None  # with an uplink, its sync line shows the queue
        if uplink is not None:
            opened.callback(_closing(uplink.stop, "the uplink"))  # before the outbox closes (LIFO)
        t_loaded = time.monotonic()
        outputs = RunOutputs(run_dir=new_run_dir(config.output.dir))
        sinks, fallback, note = _sinks(config, headless, outputs)
        handlers: list[ResultHandler] = []
        if config.output.results_jsonl:
            outputs.results = outputs.run_dir / "results.jsonl"
            writer = JsonlResultWriter(outputs.results)
            opened.callback(_closing(writer.close, "the results file"))
            handlers.append(writer)
        if recorder is not None:
            handlers.append(recorder)
        # HUD line, in this order: the source's own (a probe's battery), the outbox's, sync's.
        parts = (src, recorder, uplink)
        h = config.health
        liveness = Health()
        chain = ModelChain(slots, config.temporal, config.xray)
        if recorder is not None:  # thumbnails count what the screen counts
            recorder.counted = chain.counted(config.temporal.labels)
        pipeline = Pipeline(
            src,
            chain,
            sinks,
            config.pipeline,
            result_handlers=handlers,
            alarm=src if isinstance(src, AlarmReporter) else None,
            status=HudLines([p for p in parts if isinstance(p, StatusReporter)]),
            handler_frames=32 if recorder and recorder.thumbnails else 0,  # only thumbnails draw on them
            read_timeout_s=config.source.read_timeout_s,
            failures=FailureBudget(h.alarm_after_failures, h.max_consecutive_failures, h.failure_budget_s),
            fallback_sink=fallback,
            liveness=liveness,
            max_age_ms=config.live.max_age_ms,
        )
        _watch(liveness, config, pipeline, uplink)
        opened.callback(pipeline.display.close)  # the sinks, a fallback video among them
        if note:
            pipeline.stages.note(note)  # on the HUD, in the log and in the report
        stopper.attach(pipeline)
        log.info("running %s; stop with Ctrl-C", src.info.url)
        try:
            with liveness.notifier():  # READY=1, WATCHDOG=1 while no stage is stuck, STOPPING=1
                pipeline.run(max_frames=max_frames)
        except Exception as exc:  # run() records what its stages do; this is a bug in it
            log.critical("the run failed: %s", exc, exc_info=exc)
            pipeline.error = pipeline.error or exc
        info = _safely(lambda: src.info, None, "reading the source's figures")  # before it closes
        if uplink is not None:
            _closing(uplink.stop, "the uplink")()  # commits the last PUBACKs; its state goes in the report
        outbox_report = _safely(recorder.report, "the outbox") if recorder else None  # before it closes
        sync_report = _safely(lambda: uplink.state().to_dict(), "sync") if uplink else None
    stuck, why = liveness.stuck(), liveness.failure()  # still stuck at the end: the watchdog stopped it
    if stuck and why:
        pipeline.stages.fail(StageFailure(stuck[0][0], 0, stuck[0][1], "", "stuck", text=why))
    health = pipeline.stages.report()
    settle_outputs(outputs, pipeline.display.sinks + sinks, health)
    report = build_report(
        config, pipeline, info or SourceInfo(url=config.source.url, kind="?"), slots, outputs,
        peak_rss=rss.peak, load_s=t_loaded - t_start, outbox=outbox_report, sync=sync_report,
    )  # fmt: skip
    report["watchdog"] = liveness.report()
    path = report_path or outputs.run_dir / "report.json"
    try:
        write_report(report, path)
        outputs.report = path
    except OSError as exc:
        log.critical("%s", exc.strerror or exc)
        outputs.report_error = str(exc.strerror or exc)
    return report, outputs


def _watch(liveness: Health, config: Config, pipeline: Pipeline, uplink: Uplink | None) -> None:
    """Give each stage its deadline ([watchdog]; acquisition's includes the waits its policies make)."""
    deadlines = Deadlines(**config.watchdog.model_dump())
    stages = deadlines.for_pipeline(
        read_timeout_s=pipeline.read_timeout_s,
        inference_waits=pipeline.inference_policy is InferencePolicy.EVERY,
        display_waits=config.pipeline.display_policy == "block",
    )
    for stage, deadline_s in stages.items():
        liveness.register(stage, deadline_s)
    if uplink is not None:  # a lower layer: its loop's time is read, it does not beat
        liveness.register("uplink", deadlines.uplink_s, progress=lambda: uplink.loop_at)


def _closing(close: Callable[[], object], what: str) -> Callable[[], None]:
    """``close``, logging rather than raising: one part that fails to close (the last flush on a
    full disk) must not cost the others their close, or the run its report."""

    def call() -> None:
        try:
            close()
        except Exception as exc:
            log.error("closing %s: %s", what, exc)

    return call


def _safely(get: Callable[[], Any], what: str | None, doing: str | None = None) -> Any:
    try:
        return get()
    except Exception as exc:
        log.error("%s: %s", doing or f"reading the state of {what}", exc)
        return {"error": str(exc)} if what else None


def _sinks(config: Config, headless: bool, outputs: RunOutputs) -> tuple[list[Sink], Any, str | None]:
    """The display sinks; the fallback that replaces a window lost mid-run; a HUD note when the
    window wanted could not be had (the HUD is drawn into the recording that replaces it)."""
    d = config.display
    video = outputs.run_dir / f"overlay{recording_suffix(d.video_codec)}"
    snaps = outputs.run_dir / "snapshots"
    names = set(d.sinks)
    display: tuple[bool, str] | None = None
    if "window" in names:
        display = (False, "headless mode") if headless else display_available()
        outputs.display = {"window": display[0], "why": display[1]}
    sinks = build_sinks(
        list(d.sinks),
        headless=headless,
        video_path=video,
        snapshot_dir=snaps,
        snapshot_every_s=d.snapshot_every_s,
        title=d.title,
        fourcc=d.video_codec,
        display=display,
    )
    made = {s.name for s in sinks}
    outputs.video = video if "video" in made else None
    outputs.snapshots = snaps if "snapshots" in made else None
    note = None
    if display is not None and not display[0]:
        outputs.display["fallback"] = "video" if "video" in made else None
        if not headless:  # asked for a window and did not get one: said on the HUD as in the log
            note = f"NO DISPLAY: recording to {video.name} instead" if "video" in made else "NO DISPLAY"

    def fallback() -> Sink | None:
        sink = VideoFileSink(video, d.video_codec)
        outputs.video = video
        outputs.display.update(window=False, fallback="video")
        return sink

    return sinks, (fallback if "video" not in made and "window" in made else None), note
