"""``edge bench``: the models alone, the pipelined runtime, and the naive loop, in one run.

The naive loop is what a user would otherwise write: read, infer, draw, show, one after the
other. Both loops read the same clip through the same Source, draw with the same overlay
code and write to the same kind of sink, so the difference is the runtime's design alone.
Scenarios: the configured models on a paced source (does it keep the source rate?), the same
without the recording and with other jobs on the cores (background CPU hogs the bench starts and
stops), as fast as possible (throughput), then a model slower than the frame interval on a paced
source (does the display keep the rate, does latency stay bounded?). Each run gives
capture-to-screen latency and the CPU milliseconds per frame by stage (edge.runtime.cpu).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import DEFAULT_MODELS_DIR, Config, ModelConfig
from edge.inference.base import SessionOptions
from edge.inference.chain import ModelChain, ModelSlot
from edge.inference.model import LoadedModel
from edge.metrics import LatencyRecorder, summarize
from edge.render.display import NullSink, Sink, VideoFileSink, recording_suffix
from edge.render.overlay import HudState, compose
from edge.results import Finding, Quality, StageTimes, result_for
from edge.runtime.app import load_models
from edge.runtime.bench_table import print_table
from edge.runtime.cpu import CpuLedger, meter_sessions
from edge.runtime.loadgen import CpuHogs
from edge.runtime.pipeline import Pipeline
from edge.runtime.report import PeakRss
from edge.sources import open_source

log = logging.getLogger(__name__)
SLOW_MODEL_DIR = DEFAULT_MODELS_DIR / "bench-slow"
REPLAYS = ("video", "dicom")  # schemes a bench can pace or run flat out; others are live (a probe)
MAX_ROUNDS = 5


def with_query(url: str, **params: object) -> str:
    base, _, query = url.partition("?")
    kept = [kv for kv in query.split("&") if kv and kv.split("=")[0] not in params]
    kept += [f"{k}={v}" for k, v in params.items()]
    return f"{base}?{'&'.join(kept)}"


def _time_model(
    model: LoadedModel, frames: list[np.ndarray], runs: int, period_s: float
) -> tuple[list[float], ...]:
    model_ms, infer_ms = [], []
    for i in range(runs):
        if period_s:
            time.sleep(period_s)
        t0 = time.perf_counter_ns()
        out = model.infer(frames[i % len(frames)])
        infer_ms.append((time.perf_counter_ns() - t0) / 1e6)
        model_ms.append((out.t_model_end_ns - out.t_model_start_ns) / 1e6)
    return model_ms, infer_ms


def bench_model(
    model: LoadedModel, frames: list[np.ndarray], runs: int, period_s: float | None = None
) -> dict[str, Any]:
    """The session alone (model) and with pre/post-processing (infer), on real frames.

    Back to back, and, given ``period_s``, once per frame interval as the runtime calls it: a
    model idle for 30 ms between frames finds colder caches and clocks, and runs slower.
    """
    model_ms, infer_ms = _time_model(model, frames, runs, 0.0)
    out = {
        "name": model.name,
        "precision": model.precision,
        "provider": model.info.provider,
        "file_mb": round(model.path.stat().st_size / 2**20, 3),
        "model_ms": summarize(model_ms),
        "infer_ms": summarize(infer_ms),
    }
    if period_s:
        paced_model, paced_infer = _time_model(model, frames, max(50, runs // 2), period_s)
        out["model_ms_paced"] = summarize(paced_model)
        out["infer_ms_paced"] = summarize(paced_infer)
    return out


def is_replay(url: str) -> bool:
    return url.partition("://")[0] in REPLAYS


def sample_frames(url: str, n: int) -> tuple[list[np.ndarray], float | None, str]:
    """Up to ``n`` decoded frames of the clip (or of a live source), its native frame rate and the
    modality of its frames."""
    src = open_source(with_query(url, realtime=0, loop=1) if is_replay(url) else url)
    src.open()
    try:
        out: list[np.ndarray] = []
        modality = "US"
        while len(out) < n:
            f = src.read(1.0)
            if f is None:
                break
            out.append(f.image)
            modality = f.modality
        return out, src.info.fps, modality
    finally:
        src.close()


def _values(values: list[float]) -> list[float]:
    return [round(v, 2) for v in values]


def run_pipelined(
    config: Config, url: str, slots: list[ModelSlot], frames: int, video: Path | None
) -> dict[str, Any]:
    """The runtime's Pipeline; ``video`` None: no recording (a null sink)."""
    src = open_source(url)
    sink: Sink = VideoFileSink(video, fourcc=config.display.video_codec) if video else NullSink()
    if isinstance(sink, VideoFileSink):
        sink.wait_ready()  # the encoder process's start-up is not what a frame waits for in a run
    chain = ModelChain(slots, config.temporal)
    pipeline = Pipeline(src, chain, [sink], config.pipeline, max_age_ms=config.live.max_age_ms)
    src.open()
    try:
        pipeline.run(max_frames=frames)
    finally:
        src.close()
        sink.close()
    c = pipeline.counters
    elapsed = pipeline.elapsed_s()
    lat = pipeline.latency.summary()
    return {
        "frames": c.acquired,
        "elapsed_s": elapsed,
        "source_fps": c.acquired / elapsed,
        "ai_fps": c.inferred / elapsed,
        "display_fps": c.displayed / elapsed,
        "skipped": c.skipped,
        "e2e_ms": lat.get("e2e", {}),
        "model_ms": lat.get("model", {}),
        "overhead_ms": lat.get("overhead", {}),
        "display_latency_ms": lat.get("display", {}),
        "capture_to_result_ms": lat.get("capture_to_result", {}),
        "result_on_screen_ms": lat.get("result_on_screen", {}),
        "queue_wait_ms": lat.get("queue_wait", {}),
        "pre_post_ms": lat.get("pre_post", {}),
        "stale_dropped": pipeline.stale_dropped,
        "capture_to_screen_values": _values(pipeline.latency.values("result_on_screen")),
        "cpu": pipeline.cpu.report(c.acquired + pipeline.stale_at_source),
    }


def run_naive(
    url: str, slots: list[ModelSlot], frames: int, video: Path | None, codec: str
) -> dict[str, Any]:
    """Read, infer, draw, show, in sequence: every frame inferred, nothing overlapped."""
    src = open_source(url)
    # What a user writes inline; ``video`` None: no recording.
    sink: Sink = VideoFileSink(video, fourcc=codec, background=False) if video else NullSink()
    lat = LatencyRecorder()
    out: np.ndarray | None = None
    n = 0
    cpu = CpuLedger(meter_sessions(s.model for s in slots))
    clock = time.thread_time_ns
    src.open()
    t_start = time.monotonic_ns()
    cpu.start()
    try:
        while n < frames:
            t0 = clock()
            frame = src.read(1.0)
            cpu.add("acquisition", clock() - t0)
            if frame is None:
                if src.eof:
                    break
                continue
            n += 1
            t0 = clock()
            t_infer = time.monotonic_ns()
            quality: Quality | None = None
            findings: list[Finding] = []
            model_ns = 0
            for slot in slots:
                o = slot.model.infer(frame.image)
                model_ns += o.t_model_end_ns - o.t_model_start_ns
                quality = o.quality or quality
                findings.extend(o.findings)
            t_res = time.monotonic_ns()
            t1 = clock()
            cpu.add("pre_post", t1 - t0)  # the ledger moves the sessions' own time to "model"
            times = StageTimes(frame.t_acquired_ns, t_infer, t_infer, t_infer + model_ns, t_res)
            result = result_for(frame, quality, findings, tuple(s.model.info for s in slots), times)
            hud = HudState(source_fps=0.0, ai_fps=0.0, latency_ms=None, skipped=0, status=None)
            out = compose(frame.image, result, hud, out=out)
            t2 = clock()
            sink.show(out, frame.seq)
            t_shown = time.monotonic_ns()
            cpu.add("recording" if video else "display", clock() - t2)
            cpu.add("overlay", t2 - t1)  # the Result built and the frame drawn
            lat.add("e2e", (t_res - frame.received_ns) / 1e6)
            lat.add("overhead", (t_res - frame.received_ns - model_ns) / 1e6)
            lat.add("capture_to_result", (t_res - frame.t_acquired_ns) / 1e6)
            lat.add("display", (t_shown - frame.t_acquired_ns) / 1e6)
            lat.add("model", model_ns / 1e6)
    finally:
        cpu.stop()
        src.close()
        sink.close()
    elapsed = (time.monotonic_ns() - t_start) / 1e9
    s = lat.summary()
    return {
        "frames": n,
        "elapsed_s": elapsed,
        "source_fps": n / elapsed,
        "ai_fps": n / elapsed,
        "display_fps": n / elapsed,
        "skipped": 0,
        "e2e_ms": s.get("e2e", {}),
        "model_ms": s.get("model", {}),
        "overhead_ms": s.get("overhead", {}),
        "display_latency_ms": s.get("display", {}),
        "capture_to_result_ms": s.get("capture_to_result", {}),
        # Each frame is shown with its own result: capture to screen is the display latency.
        "result_on_screen_ms": s.get("display", {}),
        "latency_growth_ms_per_s": _growth(lat.values("display"), elapsed),
        "stale_dropped": 0,
        "capture_to_screen_values": _values(lat.values("display")),
        "cpu": cpu.report(n),
    }


def _growth(latencies: list[float], elapsed_s: float) -> float:
    """How fast latency grows over the run: about 0 when a loop keeps up, positive when it falls behind."""
    if len(latencies) < 10 or elapsed_s <= 0:
        return 0.0
    k = max(1, len(latencies) // 10)
    return float((np.median(latencies[-k:]) - np.median(latencies[:k])) / elapsed_s)


def run_bench(
    config: Config,
    *,
    frames: int = 300,
    model_runs: int = 200,
    rounds: int = MAX_ROUNDS,
    load: int = 2,
    load_nice: int = 5,
) -> dict[str, Any]:
    """``rounds``: flat-out rounds (median reported); ``load``: CPU hogs in the loaded scenario
    (0: none), ``load_nice`` levels below the bench (5: the systemd unit's Nice=-5)."""
    url = config.source.url
    opts = SessionOptions(providers=config.inference.providers, threads=config.inference.threads)
    result: dict[str, Any] = {"source": url, "frames": frames, "models": [], "scenarios": {}}
    if config.pipeline.opencv_threads:  # the runtime's setting, for every loop measured here
        cv2.setNumThreads(config.pipeline.opencv_threads)
    sample, fps, modality = sample_frames(url, 64)
    period_s = 1.0 / (fps or 30.0)
    with PeakRss() as rss, tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        # (a) each model alone, every precision it ships
        for mc in config.models:
            folder = config.model_dir(mc)
            for precision in ("fp32", "int8"):
                try:
                    model = LoadedModel(folder, precision=precision, options=opts, warmup_runs=10)
                except Exception as exc:
                    log.warning("skipping %s %s: %s", mc.name, precision, exc)
                    continue
                if modality not in model.manifest.modality:  # the chain would never run it on these
                    break
                result["models"].append(bench_model(model, sample, model_runs, period_s=period_s))
        slots = load_models(config)
        # A live source (the default run's virtual probe) runs at its own rate: paced scenarios only.
        replay = is_replay(url)
        paced = with_query(url, realtime=1, loop=1) if replay else url
        fast = with_query(url, realtime=0, loop=1)
        tmpdir = Path(tmp)
        scenarios = result["scenarios"]
        codec = config.display.video_codec
        ext = recording_suffix(codec)  # the container a run records, so its cost is in the figures
        latest = config.model_copy(
            update={"pipeline": config.pipeline.model_copy(update={"inference_policy": "latest"})}
        )
        scenarios["paced"] = {
            "pipelined": run_pipelined(config, paced, slots, frames, tmpdir / f"paced-p{ext}"),
            "naive": run_naive(paced, slots, frames, tmpdir / f"paced-n{ext}", codec),
        }
        scenarios["paced_no_recording"] = {
            "pipelined": run_pipelined(config, paced, slots, frames, None),
            "naive": run_naive(paced, slots, frames, None, codec),
        }
        if load:  # other jobs busy on the cores, started and stopped here
            with CpuHogs(load, nice=load_nice) as hogs:
                scenarios["paced_loaded"] = {
                    "pipelined": run_pipelined(config, paced, slots, frames, tmpdir / f"load-p{ext}"),
                    "naive": run_naive(paced, slots, frames, tmpdir / f"load-n{ext}", codec),
                }
                result["load"] = {"hogs": load, "nice": load_nice, "hogs_cpu_s": round(hogs.cpu_s(), 2)}
        # As fast as possible: the configured policy ("auto" infers every frame of a replay run
        # flat out) and, for comparison, the live policy ("latest") forced on the same replay.
        # Rounds alternate the two loops so that a noisy neighbour on a shared machine weighs on
        # both alike; the round with the median ratio is reported, every round is kept.
        ratios = []
        for k in range(max(1, rounds) if replay else 0):
            piped = run_pipelined(config, fast, slots, frames, tmpdir / f"max-p{k}{ext}")
            naive = run_naive(fast, slots, frames, tmpdir / f"max-n{k}{ext}", codec)
            ratios.append((piped["ai_fps"] / max(naive["ai_fps"], 1e-9), piped, naive))
        ratios.sort(key=lambda r: r[0])
        if ratios:
            _, p_med, n_med = ratios[len(ratios) // 2]
            result["max_rounds"] = [
                {"ratio": ratio, "pipelined_ai_fps": a["ai_fps"], "naive_ai_fps": b["ai_fps"]}
                for ratio, a, b in ratios
            ]
            scenarios["max"] = {
                "pipelined": p_med,
                "pipelined_latest": run_pipelined(latest, fast, slots, frames, tmpdir / f"max-l{ext}"),
                "naive": n_med,
            }
        else:
            log.warning("%s is live: it cannot be run flat out, the max scenario is left out", url)
        if (SLOW_MODEL_DIR / "manifest.json").exists():
            slow = LoadedModel(SLOW_MODEL_DIR, precision="fp32", options=opts, warmup_runs=2)
            slow_slots = [ModelSlot(model=slow, config=ModelConfig(name=slow.name))]
            result["slow_model"] = bench_model(slow, sample, 20)
            n_slow = min(frames, 150)
            scenarios["paced_slow_model"] = {
                "pipelined": run_pipelined(config, paced, slow_slots, n_slow, tmpdir / f"slow-p{ext}"),
                "naive": run_naive(paced, slow_slots, n_slow, tmpdir / f"slow-n{ext}", codec),
            }
        else:
            log.warning("no %s: the slow-model scenario is left out", SLOW_MODEL_DIR)
    result["peak_rss_mb"] = round(rss.peak / 2**20, 1)
    result["checks"] = _checks(result)
    print_table(result)
    return result


def _checks(r: dict[str, Any]) -> dict[str, Any]:
    sc = r["scenarios"]
    paced = sc["paced"]
    int8 = [m for m in r["models"] if m["precision"] == "int8"]
    model_p99 = max((m["model_ms"].get("p99", 0.0) for m in int8), default=0.0)
    paced_p99 = max((m.get("model_ms_paced", {}).get("p99", 0.0) for m in int8), default=0.0)
    checks: dict[str, Any] = {
        "paced_keeps_source_rate_fps": paced["pipelined"]["display_fps"],
        "overhead_p50_ms": paced["pipelined"]["overhead_ms"].get("p50"),
        "e2e_p99_over_model_p99": (
            paced["pipelined"]["e2e_ms"].get("p99", 0.0) / model_p99 if model_p99 else None
        ),
        "e2e_p99_over_paced_model_p99": (
            paced["pipelined"]["e2e_ms"].get("p99", 0.0) / paced_p99 if paced_p99 else None
        ),
        # The same model timed inside the paced run: one frame every 33 ms finds caches and clocks
        # colder than the back-to-back timing of (a), so its p99 there is the fairer yardstick.
        "e2e_p99_over_in_run_model_p99": (
            paced["pipelined"]["e2e_ms"].get("p99", 0.0) / paced["pipelined"]["model_ms"]["p99"]
            if paced["pipelined"]["model_ms"].get("p99")
            else None
        ),
        "naive_e2e_p99_over_in_run_model_p99": (
            paced["naive"]["e2e_ms"].get("p99", 0.0) / paced["naive"]["model_ms"]["p99"]
            if paced["naive"]["model_ms"].get("p99")
            else None
        ),
    }
    if "max" in sc:
        fast = sc["max"]
        checks["max_ai_throughput_ratio_median_round"] = fast["pipelined"]["ai_fps"] / max(
            fast["naive"]["ai_fps"], 1e-9
        )
        checks["max_ai_throughput_ratio_rounds"] = [round(x["ratio"], 2) for x in r.get("max_rounds", [])]
        checks["max_ai_throughput_ratio_latest"] = fast["pipelined_latest"]["ai_fps"] / max(
            fast["naive"]["ai_fps"], 1e-9
        )
    # What users feel: capture to screen p99 and the runtime's CPU per frame, each loop of each
    # paced scenario (the acceptance figures of docs/performance.md).
    for name in ("paced", "paced_no_recording", "paced_loaded"):
        for loop, run in sc.get(name, {}).items():
            checks[f"{name}_{loop}_capture_to_screen_p99_ms"] = run["result_on_screen_ms"].get("p99")
            checks[f"{name}_{loop}_cpu_ms_per_frame"] = run["cpu"]["ms_per_frame"]["total"]
    if "paced_slow_model" in sc:
        slow = sc["paced_slow_model"]
        checks["slow_display_fps_pipelined"] = slow["pipelined"]["display_fps"]
        checks["slow_display_fps_naive"] = slow["naive"]["display_fps"]
        checks["slow_e2e_p99_pipelined_ms"] = slow["pipelined"]["e2e_ms"].get("p99")
        checks["slow_display_latency_max_naive_ms"] = slow["naive"]["display_latency_ms"].get("max")
        checks["slow_latency_growth_naive_ms_per_s"] = slow["naive"]["latency_growth_ms_per_s"]
    return checks
