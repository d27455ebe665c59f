"""Zero lost, zero duplicated: drain an outbox through a broker that is killed, by a runtime that is killed.

    python -m tools.sync.soak                       # 10,000 results, 20 broker + 20 runtime kill -9
    python -m tools.sync.soak --results 2000 --broker-kills 3 --runtime-kills 3

A real mosquitto (tools/sync/broker.py: TLS, passwords, ACLs, persistence) and the reference
ingest (in this process) are started; the outbox is filled while no uplink runs ("offline for a
whole run"); then the "runtime", ``edge sync --once`` as its own process, drains it. Every time
the outbox's sent count has grown by another step, the next fault is injected, alternating
kill -9 of the broker (restarted on the same port and persistence folder) and kill -9 of the
runtime (started again). The runtime uses receipts (docs/sync.md): it is done when the ingest
has confirmed every result. At the end every outbox id must be in the ingest database and
confirmed in the outbox, nothing else may be there, and the raw duplicates (deliveries of an id
already stored) are reported. Exit status 0 only when nothing was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.results import new_result_id
from edge.sync.credentials import read_password, tls_context
from edge.sync.outbox import Outbox
from edge_ingest import BrokerLogin, Ingest, IngestStore
from tools.sync.broker import INGEST_USER, MosquittoBroker

REPO = Path(__file__).resolve().parents[2]
DEVICE, SITE = "soak-dev", "soak-site"


@dataclass
class SoakReport:
    results: int
    broker_kills: int
    runtime_kills: int
    runtime_starts: int
    outbox_sent: int
    outbox_queued: int
    outbox_confirmed: int
    outbox_awaiting_receipt: int
    ingest_stored: int
    lost: int  # outbox ids the ingest never stored
    unexpected: int  # ids in the ingest that the outbox never had
    raw_received: int
    raw_duplicates: int
    fill_s: float
    drain_s: float  # from the runtime's first start until every result is confirmed
    results_per_s: float  # results / drain_s

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.unexpected == 0
            and self.outbox_queued == 0
            and self.outbox_confirmed == self.results
        )

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def fill_outbox(path: Path, n: int) -> list[str]:
    """n results with a mix of priorities, as the pipeline would put them (durable on return)."""
    ids = []
    with Outbox(path) as outbox:
        for i in range(n):
            rid = new_result_id()
            outcome = outbox.put({"result_id": rid, "priority": (i * 7) % 3, "seq": i, "model": "soak"})
            if not outcome.kept:
                raise RuntimeError(f"outbox refused result {i}: {outcome.reason}")
            ids.append(rid)
    return ids


def write_runtime_config(
    path: Path, broker: MosquittoBroker, *, window: int, confirm_timeout_s: float
) -> None:
    f = broker.client_files(DEVICE)
    path.write_text(
        "[uplink]\n"
        "enabled = true\n"
        'host = "127.0.0.1"\n'
        f"port = {broker.port}\n"
        f'password_file = "{f.password_file}"\n'
        f"inflight_window = {window}\n"
        f"confirm_timeout_s = {confirm_timeout_s}\n"
        "backoff_min_s = 0.05\n"
        "backoff_max_s = 0.5\n"
        f'site = "{SITE}"\n'
        f'tls = {{ ca = "{f.ca}", cert = "{f.cert}", key = "{f.key}" }}\n'
    )


def start_ingest(broker: MosquittoBroker, db: Path) -> tuple[IngestStore, Ingest]:
    f = broker.client_files(INGEST_USER)
    login = BrokerLogin(
        "127.0.0.1",
        broker.port,
        INGEST_USER,
        read_password(f.password_file),
        tls_context(f.ca, f.cert, f.key),
    )
    store = IngestStore(db)
    ingest = Ingest(
        store, login, group="soak", client_id="soak-ingest", backoff_min_s=0.05, backoff_max_s=0.5
    )
    ingest.start()
    return store, ingest


class Runtime:
    """``edge sync --once`` as a child process that can be killed -9 and started again."""

    def __init__(self, config: Path, db: Path, log: Path) -> None:
        self.cmd = [
            sys.executable, "-m", "edge", "sync", "--once", "--config", str(config), "--db", str(db),
            "--device", DEVICE, "--timeout", "600", "--log-level", "WARNING",
        ]  # fmt: skip
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
        self.starts += 1

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()


def run_soak(
    workdir: Path,
    *,
    results: int = 10_000,
    broker_kills: int = 20,
    runtime_kills: int = 20,
    window: int = 16,
    confirm_timeout_s: float = 5.0,
    timeout_s: float = 600.0,
    progress: bool = False,
) -> SoakReport:
    workdir.mkdir(parents=True, exist_ok=True)
    outbox_db, ingest_db = workdir / "outbox.db", workdir / "ingest.db"
    t0 = time.monotonic()
    ids = fill_outbox(outbox_db, results)
    fill_s = time.monotonic() - t0
    broker = MosquittoBroker(workdir / "broker", [DEVICE])
    broker.start()
    config = workdir / "runtime.toml"
    write_runtime_config(config, broker, window=window, confirm_timeout_s=confirm_timeout_s)
    store, ingest = start_ingest(broker, ingest_db)
    runtime = Runtime(config, outbox_db, workdir / "runtime.log")
    order: list[str] = []  # alternate the two kinds while both remain
    b, r = broker_kills, runtime_kills
    while b or r:
        if b >= r and b:
            order.append("broker")
            b -= 1
        else:
            order.append("runtime")
            r -= 1
    # Faults land while the drain runs: one each time another step of results has been sent.
    step = max(1, results // (len(order) + 2))
    done = {"broker": 0, "runtime": 0}
    t1 = time.monotonic()
    deadline = t1 + timeout_s
    monitor = Outbox(outbox_db)
    try:
        runtime.start()
        next_at = step
        while time.monotonic() < deadline:
            st = monitor.stats()
            if order and st.sent >= next_at:
                kind = order.pop(0)
                if kind == "broker":
                    broker.restart()
                else:
                    runtime.kill9()
                    runtime.start()
                done[kind] += 1
                # A fixed schedule (step, 2 step, ...): the faults all land before the last step,
                # however far the drain ran on while a kill and restart took their time.
                next_at += step
                if progress:
                    print(f"  {kind} kill -9 at {st.sent} sent ({done})", flush=True)
            if not runtime.running():
                if st.queued == 0 and st.awaiting_receipt == 0 and not order:
                    break
                runtime.start()  # it gave up, or finished before every fault was injected
            time.sleep(0.01)
        drain_s = time.monotonic() - t1
        # The runtime is done: wait for the ingest to have everything the broker still holds.
        settle = time.monotonic() + min(60.0, max(10.0, deadline - time.monotonic()))
        while time.monotonic() < settle and store.counts().stored < results:
            time.sleep(0.1)
        time.sleep(0.5)  # let late duplicates land, so they are counted
    finally:
        runtime.kill9()
        ingest.stop()
        broker.stop()
    st = monitor.stats()
    monitor.close()
    counts = store.counts()
    got = store.ids()
    store.close()
    expected = set(ids)
    return SoakReport(
        results=results,
        broker_kills=done["broker"],
        runtime_kills=done["runtime"],
        runtime_starts=runtime.starts,
        outbox_sent=st.sent,
        outbox_queued=st.queued,
        outbox_confirmed=st.confirmed,
        outbox_awaiting_receipt=st.awaiting_receipt,
        ingest_stored=counts.stored,
        lost=len(expected - got),
        unexpected=len(got - expected),
        raw_received=counts.received,
        raw_duplicates=counts.duplicates,
        fill_s=round(fill_s, 2),
        drain_s=round(drain_s, 2),
        results_per_s=round(results / drain_s, 1) if drain_s > 0 else 0.0,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=int, default=10_000)
    p.add_argument("--broker-kills", type=int, default=20)
    p.add_argument("--runtime-kills", type=int, default=20)
    p.add_argument("--window", type=int, default=16, help="uplink in-flight window (16)")
    p.add_argument(
        "--confirm-timeout", type=float, default=5.0, help="[uplink] confirm_timeout_s of the runtime (5)"
    )
    p.add_argument("--workdir", type=Path, help="keep files here (default: a temporary folder)")
    p.add_argument("--out", type=Path, help="write the JSON report here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sync-soak-") as tmp:
        report = run_soak(
            args.workdir or Path(tmp),
            results=args.results,
            broker_kills=args.broker_kills,
            runtime_kills=args.runtime_kills,
            window=args.window,
            confirm_timeout_s=args.confirm_timeout,
            progress=True,
        )
    text = json.dumps(report.to_dict(), indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
