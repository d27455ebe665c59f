"""``edge bench``: the runtime against a naive loop, on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.cli.common import add_log_level, config_from_args
from edge.config import DEFAULT_CLIP_URL


def add_parser(sub: Any) -> None:
    b = sub.add_parser("bench", help="benchmark models, the pipelined runtime and a naive loop")
    b.add_argument("--config", type=Path, help="TOML config file whose models are benchmarked")
    b.add_argument("--source", help="clip to replay (default: the bundled clip)")
    b.add_argument("--frames", type=int, default=300, help="frames per pipeline/naive run (default 300)")
    b.add_argument("--model-runs", type=int, default=200, help="timed runs per model (default 200)")
    b.add_argument("--out", type=Path, default=Path("runs/bench.json"), help="JSON output file")
    add_log_level(b, default="WARNING")
    b.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from edge.runtime.bench import run_bench

    config = config_from_args(args)
    if not args.source:  # the bench replays the bundled clip unless told otherwise
        config = config.with_overrides(source={"url": DEFAULT_CLIP_URL})
    result = run_bench(config, frames=args.frames, model_runs=args.model_runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"bench JSON: {args.out}")
    return 0
