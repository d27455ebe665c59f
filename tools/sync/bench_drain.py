"""Drain throughput: results per second from the outbox to a local mosquitto, QoS 1 over TLS.

    python -m tools.sync.bench_drain                # 5,000 results, 5 runs, window 64
    python -m tools.sync.bench_drain --results 20000 --window 256 --runs 3

Each run fills a fresh outbox (not timed), starts a fresh broker (tools/sync/broker.py: TLS with
client certificates, passwords, ACLs, persistence saved on every change) with the reference ingest
subscribed, and times ``Uplink.drain_once`` from start to the last result confirmed by the
ingest's receipt (receipts on, the default): connect, TLS handshake, publish, PUBACK, the
ingest's commit, the receipt and the SQLite commits on both sides included. ``--no-receipts``
times to the last PUBACK instead (with ``--settle``, the ``ack_settle_s`` heuristic). The median
run is the figure; JSON goes to --out.

With a subscriber, a broker that saves every change (what survives kill -9, and what the soak
uses) rewrites its whole database for each queued message: that, not the uplink, sets the pace.
``--lazy-broker`` and ``--no-ingest`` (which implies ``--no-receipts``) show the uplink's own rate.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from edge.config import UplinkConfig
from edge.sync.outbox import Outbox
from edge.sync.uplink import Uplink
from tools.sync.broker import MosquittoBroker
from tools.sync.soak import fill_outbox, start_ingest


def one_run(
    workdir: Path,
    n: int,
    window: int,
    settle_s: float,
    with_ingest: bool,
    save_every_change: bool,
    receipts: bool = True,
) -> dict[str, float]:
    outbox_db = workdir / "outbox.db"
    fill_outbox(outbox_db, n)
    broker = MosquittoBroker(workdir / "broker", ["bench-dev"], autosave_every_change=save_every_change)
    broker.start()
    store = ingest = None
    try:
        if with_ingest:
            store, ingest = start_ingest(broker, workdir / "ingest.db")
            ingest.subscribed.wait(10)
        f = broker.client_files("bench-dev")
        config = UplinkConfig(
            enabled=True, host="127.0.0.1", port=broker.port, password_file=f.password_file,
            tls={"ca": f.ca, "cert": f.cert, "key": f.key}, inflight_window=window, ack_settle_s=settle_s,
            receipts=receipts and with_ingest,
        )  # fmt: skip
        with Outbox(outbox_db) as outbox:
            uplink = Uplink(outbox, config, device_id="bench-dev", site="bench")
            t0 = time.perf_counter()
            report = uplink.drain_once(timeout_s=600)
            elapsed = time.perf_counter() - t0
            uplink.stop()
        if not report.drained or report.sent + report.confirmed < n:
            raise RuntimeError(f"drain incomplete: {report}")
        stored = -1
        if store is not None:
            deadline = time.monotonic() + 60
            while store.counts().stored < n and time.monotonic() < deadline:
                time.sleep(0.05)
            stored = store.counts().stored
        return {
            "elapsed_s": elapsed,
            "results_per_s": n / elapsed,
            "ingest_stored": stored,
            "confirmed": report.confirmed,
        }
    finally:
        if ingest is not None:
            ingest.stop()
        if store is not None:
            store.close()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=int, default=5000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--window", type=int, default=64, help="in-flight window (default 64, the config default)")
    p.add_argument(
        "--no-receipts", action="store_true", help="time to the last PUBACK ([uplink] receipts = false)"
    )
    p.add_argument("--settle", type=float, default=0.0, help="ack_settle_s with --no-receipts (default 0)")
    p.add_argument("--no-ingest", action="store_true", help="no subscriber (the broker only acks)")
    p.add_argument(
        "--lazy-broker",
        action="store_true",
        help="mosquitto's default persistence (save every 30 min) instead of a save on every change",
    )
    p.add_argument("--out", type=Path, default=Path("runs/bench_drain.json"))
    args = p.parse_args(argv)
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
            r = one_run(
                Path(tmp),
                args.results,
                args.window,
                args.settle,
                not args.no_ingest,
                not args.lazy_broker,
                receipts=not args.no_receipts,
            )
        runs.append(r)
        print(f"run {i + 1}: {r['results_per_s']:.0f} results/s ({r['elapsed_s']:.2f} s)", flush=True)
    rates = [r["results_per_s"] for r in runs]
    result = {
        "results": args.results,
        "window": args.window,
        "receipts": not args.no_receipts and not args.no_ingest,
        "ack_settle_s": args.settle if args.no_receipts or args.no_ingest else None,
        "ingest": not args.no_ingest,
        "broker_saves_every_change": not args.lazy_broker,
        "qos": 1,
        "tls": True,
        "median_results_per_s": statistics.median(rates),
        "min_results_per_s": min(rates),
        "max_results_per_s": max(rates),
        "runs": runs,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median {result['median_results_per_s']:.0f} results/s over {args.runs} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
