"""The ``edge`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from edge import __version__
from edge.config import DEFAULT_CLIP_URL, Config, load_config
from edge.errors import EdgeError

log = logging.getLogger("edge")

DESCRIPTION = """\
Scanner edge runtime: reads frames from a probe, a video or DICOM, runs image-quality and
detection models on them, and draws the results over the live image.

Start here:
  edge run                       the embedded default: the virtual probe (a simulated lung scan
                                 over a serial link) and the bundled quality model, in a window
                                 (or, with no display, an overlay video under runs/)
  edge run --headless --max-frames 300 --report report.json
  edge run --source dicom:///path/to/study --config my.toml
  edge bench                     measure the runtime against a naive loop on this machine
  edge emulate --preset lung     a virtual probe on a pseudo-terminal, for serial:///dev/pts/N
  edge models list               the bundled models and whether their files verify
  edge sync --status             the outbox: queued, oldest, last success (docs/sync.md)
  edge sync --once --config F    send everything queued to the MQTT broker, then exit
  edge ingest --db F --host H    reference ingest: results arriving at the broker, into SQLite
  edge deid IN OUT               de-identify DICOM files (PS3.15 Basic Profile, pixel blackout)

Sources: probe+emu://?preset=lung  serial:///dev/ttyACM0  video:///clip.mp4[?loop=1&realtime=0]
         dicom:///file_or_folder  uvc://0
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulate"]:  # all its options belong to the emulator: hand them over untouched
        from firmware_bridge.emulator import main as emulator_main

        return emulator_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    logging.basicConfig(
        level=getattr(args, "log_level", None) or "INFO",
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args))
    except EdgeError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"edge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run the real-time loop (default: the virtual probe, bundled models)")
    r.add_argument("--config", type=Path, help="TOML config file (default: the embedded default)")
    r.add_argument("--source", help="source URL, overrides [source] url")
    r.add_argument("--headless", action="store_true", help="no window: write the overlay video instead")
    r.add_argument("--max-frames", type=int, metavar="N", help="stop after N acquired frames")
    r.add_argument("--report", type=Path, metavar="F.json", help="where to write the JSON run report")
    r.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    r.set_defaults(func=_cmd_run)

    b = sub.add_parser("bench", help="benchmark models, the pipelined runtime and a naive loop")
    b.add_argument("--config", type=Path, help="TOML config file whose models are benchmarked")
    b.add_argument("--source", help="clip to replay (default: the bundled clip)")
    b.add_argument("--frames", type=int, default=300, help="frames per pipeline/naive run (default 300)")
    b.add_argument("--model-runs", type=int, default=200, help="timed runs per model (default 200)")
    b.add_argument("--out", type=Path, default=Path("runs/bench.json"), help="JSON output file")
    b.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="WARNING")
    b.set_defaults(func=_cmd_bench)

    e = sub.add_parser(
        "emulate",
        help="run the virtual probe on a pty (prints its path); same as python -m firmware_bridge.emulator",
        add_help=False,
    )
    e.set_defaults(func=lambda _args: 0)  # handled in main() before parsing

    m = sub.add_parser("models", help="list or verify model folders")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = msub.add_parser("list", help="the configured models, their files and hash checks")
    ml.add_argument("--config", type=Path)
    ml.set_defaults(func=_cmd_models_list)
    mv = msub.add_parser("verify", help="check a model folder's manifest and every file's sha256")
    mv.add_argument("folder", type=Path)
    mv.set_defaults(func=_cmd_models_verify)
    mb = msub.add_parser(
        "build-engine",
        help="build and cache a TensorRT engine for a model folder (needs TensorRT and a CUDA GPU)",
    )
    mb.add_argument("folder", type=Path)
    mb.add_argument(
        "--precision",
        choices=["int8", "fp16", "fp32"],
        help="engine precision (default: the manifest's default; fp16 builds from the fp32 file)",
    )
    mb.add_argument(
        "--cache",
        type=Path,
        help="engine cache folder (default: $EDGE_ENGINE_CACHE or ~/.cache/scanner-edge/engines)",
    )
    mb.add_argument("--workspace-mb", type=int, default=1024, metavar="N", help="builder workspace (1024)")
    mb.set_defaults(func=_cmd_models_build_engine)

    from edge.cli.sync import add_parsers as add_sync_parsers  # edge sync, edge ingest

    add_sync_parsers(sub)

    from edge.cli.deid import add_parser as add_deid_parser  # edge deid

    add_deid_parser(sub)
    return p


def _config(args: argparse.Namespace) -> Config:
    config = load_config(getattr(args, "config", None))
    if getattr(args, "source", None):
        config = config.with_overrides(source={"url": args.source})
    return config


def _cmd_run(args: argparse.Namespace) -> int:
    from edge.runtime.app import run

    config = _config(args)
    if args.log_level is None:
        logging.getLogger().setLevel(config.log.level)
    if args.max_frames is not None and args.max_frames < 1:
        raise EdgeError("--max-frames must be at least 1")
    report, outputs = run(config, headless=args.headless, max_frames=args.max_frames, report_path=args.report)
    _print_summary(report)
    print(f"report: {outputs.report}")
    return 1 if report["exit"] == "error" else 0


def _print_summary(report: dict[str, Any]) -> None:
    c, fps, lat = report["counters"], report["fps"], report["latency_ms"]

    def p(stage: str, key: str) -> str:
        v = lat.get(stage, {}).get(key)
        return f"{v:.1f}" if v is not None else "-"

    models = ", ".join(
        f"{m['name']} {m['precision']} on {m['backend']}/{m['provider']}" for m in report["models"]
    )
    print(f"source   {report['source']['url']}")
    print(f"models   {models}")
    print(
        f"frames   acquired {c['acquired']}  inferred {c['inferred']}  skipped {c['skipped']}  "
        f"displayed {c['displayed']}  errors {c['inference_errors'] + c['display_errors']}"
    )
    print(f"fps      source {fps['source']:.1f}  ai {fps['ai']:.1f}  display {fps['display']:.1f}")
    print(
        f"latency  e2e p50 {p('e2e', 'p50')} p99 {p('e2e', 'p99')} ms  model p50 {p('model', 'p50')} ms  "
        f"overhead p50 {p('overhead', 'p50')} ms  display p50 {p('display', 'p50')} ms"
    )
    print(f"memory   peak RSS {report['peak_rss_mb']} MB")
    out = report["outputs"]
    if out["video"]:
        print(f"video    {out['video']}")
    if out["results"]:
        print(f"results  {out['results']}")
    ob = report.get("outbox")
    if ob:
        puts = ob.get("puts", {})
        skipped = f" ({puts['unchanged']} unchanged, not kept)" if puts.get("unchanged") else ""
        refused = f"  REFUSED {ob['refused']}" if ob.get("refused") else ""
        print(f"outbox   {ob['path']}: kept {puts.get('stored', 0)}{skipped}, {ob['queued']} queued{refused}")


def _cmd_bench(args: argparse.Namespace) -> int:
    from edge.runtime.bench import run_bench

    config = _config(args)
    if not args.source:  # the bench replays the bundled clip unless told otherwise
        config = config.with_overrides(source={"url": DEFAULT_CLIP_URL})
    result = run_bench(config, frames=args.frames, model_runs=args.model_runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"bench JSON: {args.out}")
    return 0


def _cmd_models_list(args: argparse.Namespace) -> int:
    from edge.inference.manifest import load_manifest, verify_folder

    config = load_config(args.config)
    failed = 0
    for mc in config.models:
        folder = config.model_dir(mc)
        try:
            m = load_manifest(folder).manifest
            verify_folder(folder)
            state = "ok"
        except EdgeError as exc:
            print(f"{mc.name:16s} {folder}  FAILED: {exc}")
            failed += 1
            continue
        files = ", ".join(
            f"{p}={f.path}" + (f" (CPU: {m.cpu_files[p].path})" if p in m.cpu_files else "")
            for p, f in m.files.items()
        )
        print(f"{m.name:16s} {m.version:8s} {m.task:14s} {files}  [{state}]")
    return 1 if failed else 0


def _cmd_models_verify(args: argparse.Namespace) -> int:
    from edge.inference.manifest import verify_folder

    hashes = verify_folder(args.folder)
    for precision, sha in hashes.items():
        print(f"{precision:5s} {sha}  ok")
    return 0


def _cmd_models_build_engine(args: argparse.Namespace) -> int:
    from edge.errors import BackendUnavailableError
    from edge.inference.engine_cache import build_engine, default_cache_dir, engine_path, timing_cache_path
    from edge.inference.manifest import load_manifest
    from edge.inference.tensorrt_backend import TensorRTBackend, device_info

    package = load_manifest(args.folder)
    m = package.manifest
    precision = args.precision or m.default_precision
    # fp16 has no file of its own: TensorRT builds it from the fp32 ONNX with the FP16 flag.
    source = precision if precision in m.files else "fp32"
    onnx_path, _, sha = package.verified_file(source)  # refuses a file whose sha256 changed
    ok, why = TensorRTBackend().is_available()
    if not ok:
        raise BackendUnavailableError(
            f"cannot build a TensorRT engine here: TensorRT is not available: {why}"
        )
    if args.workspace_mb < 1:
        raise EdgeError("--workspace-mb must be at least 1")
    cache = args.cache or default_cache_dir()
    dev = device_info()
    key = dev.key(m.name, sha, precision)
    out = engine_path(cache, key)
    timing = timing_cache_path(cache, dev.trt_version, dev.gpu_name, dev.compute_capability)
    build_engine(
        onnx_path,
        out,
        timing,
        precision,
        args.workspace_mb,
        input_shapes={m.input.name: tuple(m.input.shape)},
    )
    print(
        f"{m.name} {precision} engine for {dev.gpu_name} (sm {dev.compute_capability}, TensorRT "
        f"{dev.trt_version}): {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
