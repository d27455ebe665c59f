"""Two ingest processes on one shared subscription split the load and together get everything; one is
started as `edge ingest`, the other as `python -m edge_ingest` (the `edge-ingest` command): one command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge.sync.outbox import Outbox
from edge.sync.uplink import Uplink
from edge_ingest import IngestStore
from tests.support.paths import EDGE, REPO
from tests.support.polling import wait_for
from tests.support.sync_helpers import SITE, fill, uplink_config
from tools.sync.broker import INGEST_USER, MosquittoBroker


def test_two_ingest_processes_share_the_load(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    f = mosquitto.client_files(INGEST_USER)
    db = tmp_path / "ingest.db"  # one database shared by both (WAL); each counts its own deliveries
    procs = []
    spellings = {"ingest-x": [*EDGE, "ingest"], "ingest-y": [sys.executable, "-m", "edge_ingest"]}
    for name, command in spellings.items():
        cmd = [
            *command, "--db", str(db), "--host", "127.0.0.1",
            "--port", str(mosquitto.port), "--ca", str(f.ca), "--cert", str(f.cert), "--key", str(f.key),
            "--username", INGEST_USER, "--password-file", str(f.password_file), "--group", "pair",
            "--client-id", name, "--until", "1000",
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    try:
        store = IngestStore(db)
        wait_for(lambda: len(_subscribers(mosquitto)) >= 2, 30, "both ingest processes to connect")
        outbox = Outbox(tmp_path / "outbox.db")
        ids = fill(outbox, 1000)
        uplink = Uplink(outbox, uplink_config(mosquitto, "dev-a"), device_id="dev-a", site=SITE)
        try:
            assert uplink.drain_once(timeout_s=120).drained
        finally:
            uplink.stop()
            outbox.close()
        outputs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs), outputs
    counts = store.counts()
    assert store.ids() == set(ids)
    x, y = counts.per_client["ingest-x"]["received"], counts.per_client["ingest-y"]["received"]
    assert x > 0 and y > 0, counts.per_client  # both got part of the load
    assert x + y == counts.received == counts.stored + counts.duplicates
    assert all("stored 1000 distinct" in out for out in outputs), outputs


def _subscribers(broker: MosquittoBroker) -> set[str]:
    log = broker.log_file.read_text(errors="replace")
    return {name for name in ("ingest-x", "ingest-y") if f"as {name} " in log}
