"""The outbox quota counts what is stored, for real: a run's recorder with a 4 MiB quota and
keep = "all" against a real SQLite file.

The fault: the quota counted the WAL file, which each single-result commit grows by several whole
pages and which keeps its size after a checkpoint: 1,382 of 1,500 results were refused while 261
kB were stored. And `edge sync --status --db F` without the config reported the 2 GiB default
instead of the quota the file was used with.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from edge.config import Config
from edge.results import new_result_id
from edge.sync.recorder import open_recorder
from tests.support.paths import run_edge
from tests.support.results import make_result

QUOTA = 4 * 1024**2


def test_a_4_mib_quota_keeps_what_fits(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    config = Config().with_overrides(
        outbox={"path": path, "quota_bytes": QUOTA, "keep": "all"},
        deid={"key_file": tmp_path / "k" / "deid.key"},
    )
    rec = open_recorder(config)
    try:
        for i in range(1500):
            rec(None, make_result(result_id=new_result_id(), frame_seq=i))
        report = rec.report()
    finally:
        rec.outbox.close()
    assert report["puts"] == {"stored": 1500}, report  # was 1,382 refused
    assert report["refused"] == 0 and report["quota_state"] == "ok" and report["queued"] == 1500
    assert report["quota_bytes"] == QUOTA and 1500 * 1000 < report["bytes_used"] < QUOTA
    assert report["wal_bytes"] <= QUOTA // 16 + 64 * 1024  # checkpointed scratch space, bounded

    # Without the config, the quota the file was used with (it said 2 GiB, the default)
    status = run_edge("sync", "--status", "--db", path, "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["quota_bytes"], data["quota_state"], data["queued"]) == (QUOTA, "ok", 1500)
    text = run_edge("sync", "--status", "--db", path, cwd=tmp_path).stdout
    assert f"of {QUOTA} bytes stored (ok); WAL " in text


def test_status_says_when_the_quota_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    config = Config().with_overrides(
        outbox={"path": path, "quota_bytes": QUOTA}, deid={"key_file": tmp_path / "k" / "deid.key"}
    )
    rec = open_recorder(config)
    rec.outbox.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("DELETE FROM meta WHERE key='quota_bytes'")  # as an outbox from before it was recorded
    status = run_edge("sync", "--status", "--db", path, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "quota unknown (none recorded in this file)" in status.stdout
    assert "2147483648" not in status.stdout
    data = json.loads(run_edge("sync", "--status", "--db", path, "--json", cwd=tmp_path).stdout)
    assert data["quota_bytes"] is None and data["quota_state"] == "unknown"
