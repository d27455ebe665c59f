"""`edge run` over a damaged outbox, end to end: a real run (DICOM files, the default models), a
real mosquitto and ingest, the outbox with 4 kB overwritten in the middle.

The fault as found: the run added results to the damaged file, the uplink thread died on
"database disk image is malformed", nothing was sent, and the HUD said "sync: offline". Now the
run sets the file aside at start and says so, keeps and sends its own results from a fresh
outbox, and `edge sync --once --db` sends what the damaged file still holds.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

from tests.support.paths import run_edge
from tests.support.polling import wait_for
from tests.support.sync_helpers import (
    SITE,
    damage_mid_file,
    mosquitto_broker,
    outbox_in_three_states,
    readable_to_send,
    start_ingest,
)
from tools.deid.markers import marker_study, save

FRAMES = 6


def test_edge_run_sets_a_damaged_outbox_aside_and_sends_its_own_results(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    outbox_in_three_states(outbox)
    damaged = damage_mid_file(outbox)
    study = tmp_path / "study"
    for i, ds in enumerate(marker_study(FRAMES)[0]):
        save(ds, study / f"{i}.dcm")
    with mosquitto_broker(tmp_path / "broker", ["dev-a"]) as broker:
        f = broker.client_files("dev-a")
        config = tmp_path / "edge.toml"
        config.write_text(
            f'[device]\nid = "dev-a"\nsite = "{SITE}"\n'
            f'[source]\nurl = "dicom://{study}"\n[display]\nsinks = ["null"]\n'
            f'[output]\ndir = "{tmp_path / "runs"}"\n'
            f'[outbox]\npath = "{outbox}"\nkeep = "all"\n[deid]\nkey_file = "{tmp_path / "deid.key"}"\n'
            f'[uplink]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n'
            f'password_file = "{f.password_file}"\nconfirm_timeout_s = 5\n'
            f'tls = {{ ca = "{f.ca}", cert = "{f.cert}", key = "{f.key}" }}\n'
        )
        store, ingest = start_ingest(broker, tmp_path / "ingest.db")
        try:
            run = run_edge(
                "run", "--config", config, "--headless", "--report", tmp_path / "report.json", cwd=tmp_path,
                timeout=300,
            )  # fmt: skip
            assert run.returncode == 0, run.stdout + run.stderr
            report = json.loads((tmp_path / "report.json").read_text())
            set_aside = Path(report["outbox"]["damaged"])
            assert re.fullmatch(r"outbox\.sqlite3\.damaged-\d{8}T\d{6}Z", set_aside.name)
            assert set_aside.read_bytes() == damaged  # intact
            recovered = report["outbox"]["recovered_from"]  # what it still holds, in the report
            assert recovered is not None and Path(recovered["path"]) == set_aside
            assert "OUTBOX DAMAGED" in run.stderr and f"edge sync --once --db {set_aside}" in run.stderr
            assert report["outbox"]["puts"].get("stored") == FRAMES
            sync = report["sync"]
            assert sync["outbox_error"] is None and sync["failed"] is None
            with closing(sqlite3.connect(outbox)) as db:
                fresh = {r[0] for r in db.execute("SELECT result_id FROM items")}
            assert len(fresh) == FRAMES
            # what the short run had no time to send goes from the fresh outbox; then what the
            # damaged one still holds
            once = run_edge("sync", "--once", "--config", config, "--timeout", "60", cwd=tmp_path)
            assert once.returncode == 0, once.stdout + once.stderr
            wait_for(lambda: fresh <= store.ids(), 60, "the run's own results at the ingest")
            left = readable_to_send(set_aside)
            once = run_edge(
                "sync", "--once", "--config", config, "--db", set_aside, "--timeout", "60", cwd=tmp_path
            )
            assert once.returncode == 0, once.stdout + once.stderr
            wait_for(lambda: left <= store.ids(), 60, "what the damaged outbox held, at the ingest")
        finally:
            ingest.stop()
    print(f"edge run rc {run.returncode}, exit {report['exit']!r}, sync {sync}; {run.stdout}")
