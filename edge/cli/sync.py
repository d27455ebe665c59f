"""``edge sync``: the outbox's state, or drain it once; a damaged outbox is reported as such, and
drained of what can still be read from it (copied into ``<file>.readable`` first: the damaged
file is never written).

``edge ingest`` (the reference ingest) belongs to the ``edge_ingest`` package, which adds it through
the ``scanner_edge.commands`` entry point (``edge.cli.plugins``)."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from edge.config import Config, load_config
from edge.errors import ConfigError
from edge.sync.status import format_age

log = logging.getLogger("edge.sync")


def add_parsers(sub: Any) -> None:
    """Register ``sync`` on the ``edge`` command's subparsers."""
    s = sub.add_parser("sync", help="the outbox's sync state, or drain it to the broker once")
    mode = s.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--status",
        action="store_true",
        help="print queued/sent counts, ages and the quota (read-only); exit 1 if the outbox is damaged",
    )
    mode.add_argument(
        "--once",
        action="store_true",
        help="send everything queued, then exit (1 if any is left); of a damaged outbox, what is readable",
    )
    s.add_argument("--config", type=Path, help="TOML config with [uplink], [device], [outbox]")
    s.add_argument("--db", type=Path, help="outbox database (default: [outbox] path, as edge run uses)")
    s.add_argument("--device", help="device id (default: [device] id, else the host name)")
    s.add_argument("--site", help="site (default: [uplink] site, else [device] site, else 'default')")
    s.add_argument(
        "--timeout", type=float, default=300.0, metavar="S", help="--once gives up after S s (300)"
    )
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="WARNING")
    s.set_defaults(func=cmd_sync)


def device_identity(config: Config, device: str | None, site: str | None) -> tuple[str, str]:
    """(device id, site): the flags, else [uplink] site / [device] id and site, else "default" site."""
    dev = device or config.device.id
    st = site or config.uplink.site or config.device.site or "default"
    return dev, st


def outbox_path(config: Config, db: Path | None) -> Path:
    """--db, else [outbox] path, else the runs folder's shared outbox (what `edge run` writes)."""
    return db if db is not None else config.outbox_path()


def _fmt_age(s: float | None) -> str:
    return "-" if s is None else format_age(s)


def _quota_text(used: int, quota: int | None, state: str, wal: int) -> str:
    if quota is None:
        return f"{used} bytes stored, quota unknown (none recorded in this file); WAL {wal} bytes"
    return f"{used} of {quota} bytes stored ({state}); WAL {wal} bytes"


def _set_aside_beside(path: Path) -> list[Path]:
    """Damaged outboxes set aside from ``path`` (the databases, not their -wal/-shm or copies)."""
    found = path.parent.glob(f"{path.name}.damaged-*")
    return sorted(p for p in found if not p.name.endswith(("-wal", "-shm", ".readable")))


def _damaged_status(path: Path, problem: str, as_json: bool) -> int:
    from edge.sync.damage import survey

    counts = survey(path)
    if as_json:
        print(json.dumps({"path": str(path), "damaged": problem, **counts.to_dict()}, indent=2))
        return 1
    lost = f", {counts.unreadable} unreadable" + (" (more may be lost)" if counts.incomplete else "")
    print(f"outbox   {path}")
    print(f"DAMAGED  {problem}")
    print(
        f"readable {counts.to_send} to send ({counts.queued} queued, {counts.awaiting_receipt} awaiting"
        f" receipt), {counts.confirmed} confirmed, {counts.pruned} pruned{lost}"
    )
    print(f"send     edge sync --once --db {path}  (edge run sets a damaged outbox aside at start)")
    return 1


def cmd_sync(args: argparse.Namespace) -> int:
    from edge.sync.outbox import Outbox, OutboxDamaged

    config = load_config(args.config)
    path = outbox_path(config, args.db)
    if args.status:
        if not path.exists():
            raise ConfigError(f"{path}: no outbox database there")
        try:  # quick_check: a damaged file is reported, never used nor moved by a status query
            outbox = Outbox(path, on_damage="raise")
        except OutboxDamaged as exc:
            return _damaged_status(path, exc.problem, args.json)
        with outbox:
            stats = outbox.stats()
            recorded = outbox.recorded_damage()
        aside = _set_aside_beside(path)
        data = {**stats.to_dict(), "set_aside": [str(p) for p in aside], "last_set_aside": recorded}
        if args.json:
            print(json.dumps(data, indent=2))
            return 0
        last = "never" if stats.last_sent_wall is None else f"{time.time() - stats.last_sent_wall:.0f} s ago"
        print(f"outbox   {path}")
        print(f"queued   {stats.queued} (oldest {_fmt_age(stats.oldest_queued_age_s)})")
        lc = stats.last_confirmed_wall
        confirmed = "never" if lc is None else f"{time.time() - lc:.0f} s ago"
        print(f"sent     {stats.sent}  pruned {stats.pruned}  last success {last}")
        print(
            f"receipts {stats.confirmed} confirmed, {stats.awaiting_receipt} awaiting receipt"
            f"  last receipt {confirmed}"
        )
        print(
            f"disk     {_quota_text(stats.bytes_used, stats.quota_bytes, stats.quota_state, stats.wal_bytes)}"
        )
        for p in aside:
            then = ""
            if recorded is not None and recorded.get("path") == str(p):
                then = (
                    f" (when set aside: {recorded['to_send']} to send, {recorded['unreadable']} unreadable)"
                )
            print(f"damaged  {p}{then}: edge sync --once --db {p}")
        return 0
    return _sync_once(config, path, args)


def _readable_copy(path: Path, problem: str) -> Path:
    """Copy what the damaged outbox at ``path`` still has to send into ``<path>.readable`` (made or
    topped up; the damaged file is only read) and say what was found."""
    from edge.sync.damage import Survey, readable_items
    from edge.sync.outbox import Outbox

    copy = Path(f"{path}.readable")
    counts = Survey()
    with Outbox(copy) as readable:
        added = readable.adopt(readable_items(path, counts))
    lost = f"; {counts.unreadable} unreadable" + (" (more may be lost)" if counts.incomplete else "")
    log.warning("%s is damaged (%s)", path, problem)
    print(
        f"damaged outbox {path}: {counts.to_send} readable to send ({counts.queued} queued,"
        f" {counts.awaiting_receipt} awaiting receipt), {counts.confirmed} confirmed{lost};"
        f" {added} newly copied to {copy}, sending from there"
    )
    return copy


def _sync_once(config: Config, path: Path, args: argparse.Namespace) -> int:
    from edge.sync.damage import check
    from edge.sync.outbox import Outbox
    from edge.sync.uplink import Uplink

    device, site = device_identity(config, args.device, args.site)
    problem = check(path)  # a file that is not SQLite at all raises (an OutboxError: exit 2)
    if problem is not None:
        path = _readable_copy(path, problem)
    with Outbox(path) as outbox:
        uplink = Uplink(outbox, config.uplink, device_id=device, site=site)
        try:
            report = uplink.drain_once(args.timeout)
        finally:
            uplink.stop()
        state = uplink.state()
    if args.json:
        print(json.dumps({"drain": report.__dict__, "sync": state.to_dict()}, indent=2))
    else:
        awaiting = (
            f", {report.confirmed} confirmed by receipts, {report.awaiting_receipt} awaiting receipt"
            if config.uplink.receipts
            else ""
        )
        print(
            f"sent {report.sent} in {report.elapsed_s:.1f} s; {report.remaining} still queued"
            f" ({report.refused} refused by the broker){awaiting}"
            + (f"; last error: {report.last_error}" if report.last_error and not report.drained else "")
        )
    return 0 if report.drained and not report.remaining else 1
