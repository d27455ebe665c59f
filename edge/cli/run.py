"""``edge run``: the real-time loop, and the summary printed after it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from edge.cli.common import add_log_level, config_from_args
from edge.errors import EdgeError


def add_parser(sub: Any) -> None:
    r = sub.add_parser("run", help="run the real-time loop (default: the virtual probe, bundled models)")
    r.add_argument("--config", type=Path, help="TOML config file (default: the embedded default)")
    r.add_argument("--source", help="source URL, overrides [source] url")
    r.add_argument("--headless", action="store_true", help="no window: write the overlay video instead")
    r.add_argument("--max-frames", type=int, metavar="N", help="stop after N acquired frames")
    r.add_argument("--report", type=Path, metavar="F.json", help="where to write the JSON run report")
    add_log_level(r)
    r.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from edge.runtime.signals import RunStopper, stop_on_signals

    stopper = RunStopper()  # before the runtime's imports: a SIGTERM in start-up still gets a report
    with stop_on_signals(stopper):
        from edge.runtime.app import run

        config = config_from_args(args)
        if args.log_level is None:
            logging.getLogger().setLevel(config.log.level)
        if args.max_frames is not None and args.max_frames < 1:
            raise EdgeError("--max-frames must be at least 1")
        report, outputs = run(
            config,
            headless=args.headless,
            max_frames=args.max_frames,
            report_path=args.report,
            stopper=stopper,
        )
    _print_summary(report)
    if outputs.report is None:  # the run's one record is lost: say so where it is seen, and fail
        print(f"REPORT NOT WRITTEN: {outputs.report_error}", file=sys.stderr)
        return 1
    print(f"report: {outputs.report}")
    # completed | stopped: 0; failed (a stage over its failure budget, or stuck) | error: 1
    code = 1 if report["exit"] in ("error", "failed") else 0
    if any(s.get("at_end") for s in report.get("watchdog", {}).get("stuck", {}).values()):
        # A thread stuck in C code (a model call that never returns) cannot be joined, and the
        # interpreter's shutdown would abort on it: the report is written, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


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
    print(
        f"screen   capture to screen p50 {p('result_on_screen', 'p50')} p95 {p('result_on_screen', 'p95')} "
        f"p99 {p('result_on_screen', 'p99')} max {p('result_on_screen', 'max')} ms  "
        f"stale dropped {report.get('live', {}).get('stale_dropped', 0)}"
    )
    cpu = report.get("cpu", {}).get("ms_per_frame", {})
    if cpu:
        stages = "  ".join(f"{k} {v:.2f}" for k, v in cpu.items() if k != "total")
        kids = report["cpu"].get("child_processes_ms_per_frame", {})
        beside = "".join(f" + {v:.2f} {k} process" for k, v in kids.items())
        print(f"cpu      {cpu.get('total', 0.0):.2f} ms/frame{beside} ({stages})")
    print(f"memory   peak RSS {report['peak_rss_mb']} MB")
    out = report["outputs"]
    if out["video"]:
        print(f"video    {out['video']}")
    if out["results"]:
        print(f"results  {out['results']}")
    for name, note in out.get("notes", {}).items():
        print(f"{name:<8} {note}")
    for note in report.get("health", {}).get("notes", ()):
        print(f"note     {note}")
    if report["exit"] in ("failed", "error"):
        print(f"{report['exit'].upper():<8} {report['reason']}")
    ob = report.get("outbox")
    if ob:
        puts = ob.get("puts", {})
        skipped = f" ({puts['unchanged']} unchanged, not kept)" if puts.get("unchanged") else ""
        refused = f"  REFUSED {ob['refused']}" if ob.get("refused") else ""
        print(f"outbox   {ob['path']}: kept {puts.get('stored', 0)}{skipped}, {ob['queued']} queued{refused}")
