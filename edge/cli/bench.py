"""``edge bench``: the runtime against a naive loop, on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.cli.common import add_log_level, config_from_args
from edge.config import DEFAULT_CLIP_URL
from edge.errors import EdgeError


def add_parser(sub: Any) -> None:
    b = sub.add_parser("bench", help="benchmark models, the pipelined runtime and a naive loop")
    b.add_argument("--config", type=Path, help="TOML config file whose models are benchmarked")
    b.add_argument(
        "--source",
        help="clip to replay (default: the bundled clip), or a live source such as the default run's "
        "probe+emu://?preset=lung&fps=30 (paced scenarios only: a live source cannot run flat out)",
    )
    b.add_argument("--frames", type=int, default=300, help="frames per pipeline/naive run (default 300)")
    b.add_argument("--model-runs", type=int, default=200, help="timed runs per model (default 200)")
    b.add_argument("--rounds", type=int, default=5, help="flat-out rounds, the median reported (default 5)")
    b.add_argument(
        "--load", type=int, default=2, metavar="N",
        help="CPU hogs (busy child processes) in the loaded scenario; 0 leaves it out (default 2)",
    )  # fmt: skip
    b.add_argument(
        "--load-nice", type=int, default=5, metavar="N",
        help="the hogs run N nice levels below the bench: 5 as under the systemd unit (default 5)",
    )  # fmt: skip
    b.add_argument("--out", type=Path, default=Path("runs/bench.json"), help="JSON output file")
    b.add_argument("--plot", type=Path, metavar="DIR", help="also write PNG charts into DIR (matplotlib)")
    b.add_argument(
        "--from-json", type=Path, metavar="FILE",
        help="run nothing: chart a bench JSON written before (with --plot)",
    )  # fmt: skip
    add_log_level(b, default="WARNING")
    b.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.from_json is not None:
        if args.plot is None:
            raise EdgeError("--from-json charts a bench JSON: give --plot DIR too")
        try:
            result = json.loads(args.from_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EdgeError(f"--from-json {args.from_json}: cannot read a bench JSON: {exc}") from exc
        return _plot(result, args.plot)
    if args.plot is not None:
        from edge.runtime.charts import check_matplotlib

        check_matplotlib()  # before minutes of benchmarking, not after
    if args.rounds < 1 or args.load < 0 or not 0 <= args.load_nice <= 19:
        raise EdgeError("--rounds must be >= 1, --load >= 0 and --load-nice 0..19")
    from edge.runtime.bench import run_bench

    config = config_from_args(args)
    if not args.source:  # the bench replays the bundled clip unless told otherwise
        config = config.with_overrides(source={"url": DEFAULT_CLIP_URL})
    result = run_bench(
        config, frames=args.frames, model_runs=args.model_runs, rounds=args.rounds,
        load=args.load, load_nice=args.load_nice,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"bench JSON: {args.out}")
    return _plot(result, args.plot) if args.plot is not None else 0


def _plot(result: dict[str, Any], out_dir: Path) -> int:
    from edge.runtime.charts import plot_bench

    for path in plot_bench(result, out_dir):
        print(f"chart: {path}")
    return 0
