"""``edge bench``: the models alone, the pipelined runtime, and the naive loop, in one run.

The naive loop is what a user would otherwise write: read, infer, draw, show, one after the
other. Both loops read the same clip through the same Source, draw with the same overlay
code and write to the same kind of sink, so the difference is the runtime's design alone.
Scenarios: the configured models on a paced source (does it keep the source rate?) and as
fast as possible (throughput), then a model slower than the frame interval on a paced source
(does the display keep the rate, does latency stay bounded?).
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
from edge.render.display import VideoFileSink, recording_suffix
from edge.render.overlay import HudState, compose
from edge.results import Finding, Quality, StageTimes, result_for
from edge.runtime.app import load_models
from edge.runtime.pipeline import Pipeline
from edge.runtime.report import PeakRss
from edge.sources import open_source

log = logging.getLogger(__name__)
SLOW_MODEL_DIR = DEFAULT_MODELS_DIR / "bench-slow"
MAX_ROUNDS = 3


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


def sample_frames(url: str, n: int) -> tuple[list[np.ndarray], float | None]:
    """Up to ``n`` decoded frames of the clip, and its native frame rate."""
    src = open_source(with_query(url, realtime=0, loop=1))
    src.open()
    try:
        out: list[np.ndarray] = []
        while len(out) < n:
            f = src.read(1.0)
            if f is None:
                break
            out.append(f.image)
        return out, src.info.fps
    finally:
        src.close()


def run_pipelined(
    config: Config, url: str, slots: list[ModelSlot], frames: int, video: Path
) -> dict[str, Any]:
    src = open_source(url)
    sink = VideoFileSink(video, fourcc=config.display.video_codec)
    pipeline = Pipeline(src, ModelChain(slots, config.temporal), [sink], config.pipeline)
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
    }


def run_naive(url: str, slots: list[ModelSlot], frames: int, video: Path, codec: str) -> dict[str, Any]:
    """Read, infer, draw, show, in sequence: every frame inferred, nothing overlapped."""
    src = open_source(url)
    sink = VideoFileSink(video, fourcc=codec, background=False)  # what a user writes inline
    lat = LatencyRecorder()
    out: np.ndarray | None = None
    n = 0
    src.open()
    t_start = time.monotonic_ns()
    try:
        while n < frames:
            frame = src.read(1.0)
            if frame is None:
                if src.eof:
                    break
                continue
            n += 1
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
            times = StageTimes(frame.t_acquired_ns, t_infer, t_infer, t_infer + model_ns, t_res)
            result = result_for(frame, quality, findings, tuple(s.model.info for s in slots), times)
            hud = HudState(source_fps=0.0, ai_fps=0.0, latency_ms=None, skipped=0, status=None)
            out = compose(frame.image, result, hud, out=out)
            sink.show(out, frame.seq)
            t_shown = time.monotonic_ns()
            lat.add("e2e", (t_res - frame.received_ns) / 1e6)
            lat.add("overhead", (t_res - frame.received_ns - model_ns) / 1e6)
            lat.add("capture_to_result", (t_res - frame.t_acquired_ns) / 1e6)
            lat.add("display", (t_shown - frame.t_acquired_ns) / 1e6)
            lat.add("model", model_ns / 1e6)
    finally:
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
        "latency_growth_ms_per_s": _growth(lat.values("display"), elapsed),
    }


def _growth(latencies: list[float], elapsed_s: float) -> float:
    """How fast latency grows over the run: about 0 when a loop keeps up, positive when it falls behind."""
    if len(latencies) < 10 or elapsed_s <= 0:
        return 0.0
    k = max(1, len(latencies) // 10)
    return float((np.median(latencies[-k:]) - np.median(latencies[:k])) / elapsed_s)


def run_bench(config: Config, *, frames: int = 300, model_runs: int = 200) -> dict[str, Any]:
    url = config.source.url
    opts = SessionOptions(providers=config.inference.providers, threads=config.inference.threads)
    result: dict[str, Any] = {"source": url, "frames": frames, "models": [], "scenarios": {}}
    if config.pipeline.opencv_threads:  # the runtime's setting, for every loop measured here
        cv2.setNumThreads(config.pipeline.opencv_threads)
    sample, fps = sample_frames(url, 64)
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
                result["models"].append(bench_model(model, sample, model_runs, period_s=period_s))
        slots = load_models(config)
        paced, fast = with_query(url, realtime=1, loop=1), with_query(url, realtime=0, loop=1)
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
        # As fast as possible: the configured policy ("auto" infers every frame of a replay run
        # flat out) and, for comparison, the live policy ("latest") forced on the same replay.
        # Rounds alternate the two loops so that a noisy neighbour on a shared machine weighs on
        # both alike; the round with the median ratio is reported, every round is kept.
        rounds = []
        for k in range(MAX_ROUNDS):
            piped = run_pipelined(config, fast, slots, frames, tmpdir / f"max-p{k}{ext}")
            naive = run_naive(fast, slots, frames, tmpdir / f"max-n{k}{ext}", codec)
            rounds.append((piped["ai_fps"] / max(naive["ai_fps"], 1e-9), piped, naive))
        rounds.sort(key=lambda r: r[0])
        _, p_med, n_med = rounds[len(rounds) // 2]
        result["max_rounds"] = [
            {"ratio": ratio, "pipelined_ai_fps": a["ai_fps"], "naive_ai_fps": b["ai_fps"]}
            for ratio, a, b in rounds
        ]
        scenarios["max"] = {
            "pipelined": p_med,
            "pipelined_latest": run_pipelined(latest, fast, slots, frames, tmpdir / f"max-l{ext}"),
            "naive": n_med,
        }
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
    paced, fast = sc["paced"], sc["max"]
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
        "max_ai_throughput_ratio_median_round": fast["pipelined"]["ai_fps"]
        / max(fast["naive"]["ai_fps"], 1e-9),
        "max_ai_throughput_ratio_rounds": [round(x["ratio"], 2) for x in r.get("max_rounds", [])],
        "max_ai_throughput_ratio_latest": fast["pipelined_latest"]["ai_fps"]
        / max(fast["naive"]["ai_fps"], 1e-9),
    }
    if "paced_slow_model" in sc:
        slow = sc["paced_slow_model"]
        checks["slow_display_fps_pipelined"] = slow["pipelined"]["display_fps"]
        checks["slow_display_fps_naive"] = slow["naive"]["display_fps"]
        checks["slow_e2e_p99_pipelined_ms"] = slow["pipelined"]["e2e_ms"].get("p99")
        checks["slow_display_latency_max_naive_ms"] = slow["naive"]["display_latency_ms"].get("max")
        checks["slow_latency_growth_naive_ms_per_s"] = slow["naive"]["latency_growth_ms_per_s"]
    return checks


def print_table(r: dict[str, Any]) -> None:
    print(f"\nsource: {r['source']}")
    print(
        f"\n{'model':22s} {'prec':5s} {'MB':>6s} {'model p50':>10s} {'p99':>8s} "
        f"{'+pre/post p50':>14s} {'p99':>8s} {'paced p50':>10s} {'p99':>8s}"
    )
    for m in r["models"] + ([r["slow_model"]] if "slow_model" in r else []):
        mm, im, pm = m["model_ms"], m["infer_ms"], m.get("model_ms_paced", {})
        print(
            f"{m['name']:22s} {m['precision']:5s} {m['file_mb']:6.2f} {mm['p50']:10.2f} {mm['p99']:8.2f} "
            f"{im['p50']:14.2f} {im['p99']:8.2f} {pm.get('p50', float('nan')):10.2f} "
            f"{pm.get('p99', float('nan')):8.2f}"
        )
    print(
        f"\n{'scenario':18s} {'loop':15s} {'src fps':>8s} {'AI fps':>7s} {'disp fps':>8s} {'skipped':>7s} "
        f"{'e2e p50':>8s} {'e2e p99':>8s} {'ovh p50':>8s} {'disp lat p50':>12s} {'max':>8s}"
    )
    for name, pair in r["scenarios"].items():
        for loop, s in pair.items():
            e, o, d = s["e2e_ms"], s["overhead_ms"], s["display_latency_ms"]
            print(
                f"{name:18s} {loop:15s} {s['source_fps']:8.1f} {s['ai_fps']:7.1f} {s['display_fps']:8.1f} "
                f"{s['skipped']:7d} {e.get('p50', 0):8.2f} {e.get('p99', 0):8.2f} {o.get('p50', 0):8.2f} "
                f"{d.get('p50', 0):12.2f} {d.get('max', 0):8.1f}"
            )
    print("\nchecks:")
    for k, v in r["checks"].items():
        print(f"  {k:40s} {v:.2f}" if isinstance(v, float) else f"  {k:40s} {v}")
    print(f"  {'peak_rss_mb':40s} {r['peak_rss_mb']}")
