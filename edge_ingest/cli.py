"""The ingest's command line: ``edge-ingest`` (also ``python -m edge_ingest``) and ``edge ingest``.

``edge ingest`` is the same command, found by the ``edge`` command line through the entry-point
group ``scanner_edge.commands`` (:func:`add_parser`), so the device package never imports this one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from edge.errors import ConfigError, EdgeError
from edge.sync.credentials import read_password, tls_context
from edge_ingest.client import BrokerLogin, Ingest
from edge_ingest.store import IngestStore

log = logging.getLogger("edge_ingest")

HELP = "reference ingest: subscribe (shared) and store results in SQLite"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, required=True, help="SQLite file the results go to")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=8883)
    p.add_argument("--ca", type=Path, help="CA of the broker's certificate (TLS when given)")
    p.add_argument("--cert", type=Path, help="client certificate")
    p.add_argument("--key", type=Path, help="client key")
    p.add_argument("--username")
    p.add_argument("--password-file", type=Path, help="first line is the password")
    p.add_argument("--group", default="ingest", help="shared-subscription group (default 'ingest')")
    p.add_argument("--client-id", help="MQTT client id (default ingest-<host>-<pid>); keep it to resume")
    p.add_argument("--prefix", default="scanners", help="topic prefix (default 'scanners')")
    p.add_argument("--until", type=int, metavar="N", help="exit once N distinct results are stored")
    p.add_argument("--idle-exit", type=float, metavar="S", help="exit after S s with nothing new")
    p.add_argument(
        "--no-receipts",
        action="store_true",
        help="send no receipts (only for devices with [uplink] receipts = false; docs/sync.md)",
    )
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="INFO")
    p.set_defaults(func=run)


def add_parser(sub: Any) -> None:
    """Register ``ingest`` on the ``edge`` command's subparsers (the ``scanner_edge.commands`` hook)."""
    add_arguments(sub.add_parser("ingest", help=HELP))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edge-ingest",
        description="Reference ingest: the devices' results arriving at the MQTT broker (a shared"
        " subscription), stored in SQLite, with receipts back to the devices (docs/sync.md).",
    )
    add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return run(args)
    except EdgeError as exc:  # the exit codes of `edge ingest`
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    """Ingest until a signal, ``--until`` or ``--idle-exit``; print the counts."""
    if (args.cert is None) != (args.key is None):
        raise ConfigError("--cert and --key go together")
    login = BrokerLogin(
        host=args.host,
        port=args.port,
        username=args.username,
        password=read_password(args.password_file) if args.password_file else None,
        tls=tls_context(args.ca, args.cert, args.key) if args.ca else None,
    )
    store = IngestStore(args.db)
    client_id = args.client_id or f"ingest-{socket.gethostname()}-{os.getpid()}"
    ingest = Ingest(
        store,
        login,
        group=args.group,
        client_id=client_id,
        topic_prefix=args.prefix,
        receipts=not args.no_receipts,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    ingest.start()
    print(
        f"ingest {client_id}: {', '.join(ingest.filters)} on {args.host}:{args.port} -> {args.db}", flush=True
    )
    last_stored, last_change = -1, time.monotonic()
    try:
        while not stop.wait(0.5):
            counts = store.counts()
            if counts.stored != last_stored:
                last_stored, last_change = counts.stored, time.monotonic()
            if args.until is not None and counts.stored >= args.until:
                break
            if args.idle_exit is not None and time.monotonic() - last_change >= args.idle_exit:
                break
    finally:
        ingest.stop()
    counts = store.counts()
    store.close()
    mine = counts.per_client.get(client_id, {})
    print(
        f"stored {counts.stored} distinct; received {counts.received} raw, {counts.duplicates} duplicates, "
        f"{counts.invalid} invalid (all clients); this client received {mine.get('received', 0)}, "
        f"sent {ingest.receipts_sent} receipts naming {ingest.receipt_ids_sent} ids",
        flush=True,
    )
    return 0
