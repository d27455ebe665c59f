"""What the command families share: the config a command runs with, and the log-level flag."""

from __future__ import annotations

import argparse
from typing import Any

from edge.config import Config, load_config

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def config_from_args(args: argparse.Namespace) -> Config:
    """--config (else the embedded default), with --source over [source] url when given."""
    config = load_config(getattr(args, "config", None))
    if getattr(args, "source", None):
        config = config.with_overrides(source={"url": args.source})
    return config


def add_log_level(parser: Any, default: str | None = None) -> None:
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=default)
