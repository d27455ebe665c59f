"""A damaged outbox, for real: 4 kB of the file overwritten in the middle, on a page of results.

The fault: the outbox was used silently. `edge sync --status` showed nothing wrong (its counts
come from an intact index), the uplink thread died on "database disk image is malformed", nothing
was sent, and the HUD blamed the network. Now the damage is found (at open, or when met in use),
the file is set aside intact with its WAL, a fresh outbox takes what comes, and `edge sync --once
--db <damaged file>` sends what can still be read from it.
"""

from __future__ import annotations

import logging
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from edge.results import new_result_id
from edge.sync import damage
from edge.sync.outbox import Outbox
from edge.sync.status import outbox_text
from edge.sync.uplink import Uplink
from tests.support.paths import REPO, run_edge
from tests.support.polling import wait_for
from tests.support.sync_helpers import SITE, fill, mosquitto_broker, start_ingest, uplink_config
from tools.sync.broker import MosquittoBroker

QUOTA = 64 * 1024**2
PAGE = 4096
N = 500  # 300 queued, 100 sent awaiting a receipt, 100 confirmed


def _message(i: int) -> dict[str, object]:
    return {"kind": "result", "result_id": new_result_id(), "priority": i % 3, "seq": i, "pad": "x" * 700}


def _outbox(path: Path) -> dict[str, bytes]:
    """An outbox of N results in all three states, closed (all in the main file); id -> payload."""
    with Outbox(path, quota_bytes=QUOTA) as ob:
        ids = [ob.put(_message(i)).result_id for i in range(N)]
        ob.mark_sent(ids[:200])
        ob.mark_confirmed(ids[:100])
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA page_size").fetchone()[0] == PAGE
        return dict(db.execute("SELECT result_id, payload FROM items").fetchall())


def _table_unreadable(path: Path) -> bool:
    try:
        with closing(damage.read_only(path)) as db:
            db.execute("SELECT payload FROM items NOT INDEXED").fetchall()
    except sqlite3.DatabaseError:
        return True
    return False


def _damage(path: Path) -> bytes:
    """Overwrite 4 kB in the middle of the file with random bytes, on the page nearest the middle
    that holds results (a full read of them then fails); the damaged file's bytes."""
    data = path.read_bytes()
    pages = len(data) // PAGE
    junk = random.Random(11).randbytes(PAGE)
    for page in sorted(range(2, pages), key=lambda p: abs(p - pages // 2)):
        off = page * PAGE
        with path.open("r+b") as f:  # in place, as a failing disk does
            f.seek(off)
            f.write(junk)
        if _table_unreadable(path):
            return path.read_bytes()
        with path.open("r+b") as f:
            f.seek(off)
            f.write(data[off : off + PAGE])
    raise AssertionError("no page of results to damage")


def _to_send(path: Path) -> set[str]:
    """The readable results of a damaged outbox that still have to go (queued, or awaiting receipt)."""
    rows = damage.readable_items(path)
    return {
        r.result_id for r in rows if r.state == "queued" or (r.state == "sent" and r.confirmed_wall is None)
    }


def test_a_damaged_outbox_is_reported_then_set_aside_intact_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite3"
    original = _outbox(path)
    damaged = _damage(path)

    # edge sync --status reports it (it said nothing was wrong), and changes nothing
    status = run_edge("sync", "--status", "--db", path, cwd=tmp_path)
    assert status.returncode == 1, status.stdout + status.stderr
    assert "DAMAGED  quick_check: " in status.stdout and f"edge sync --once --db {path}" in status.stdout
    assert re.search(
        r"readable \d+ to send \(\d+ queued, \d+ awaiting receipt\), \d+ confirmed", status.stdout
    )
    assert path.read_bytes() == damaged

    # opened as a run opens it: set aside loudly, counted, and a fresh outbox in its place
    caplog.set_level(logging.ERROR, logger="edge.sync.outbox")
    with Outbox(path, quota_bytes=QUOTA) as ob:
        found = ob.recovered_from
        assert found is not None and found.original == path
        assert re.fullmatch(r"outbox\.sqlite3\.damaged-\d{8}T\d{6}Z", found.path.name)
        assert found.path.read_bytes() == damaged  # moved aside intact
        s = found.survey
        assert s.unreadable > 0 and s.to_send + s.confirmed + s.unreadable == N
        assert (s.queued <= 300, s.awaiting_receipt <= 100, s.confirmed <= 100) == (True, True, True)
        logged = [r.getMessage() for r in caplog.records if "OUTBOX DAMAGED" in r.getMessage()]
        assert any(str(found.path) in m and f"edge sync --once --db {found.path}" in m for m in logged)
        assert ob.put(_message(0)).kept  # what comes now is kept
        stats = ob.stats()
        assert stats.queued == 1 and stats.damaged == str(found.path)
        assert (outbox_text(stats, 0) or "").startswith(f"OUTBOX DAMAGED: SET ASIDE AS {found.path.name}")
    assert damage.check(path) is None
    # what can be read back is exactly what was put, never a garbled row
    readable = list(damage.readable_items(found.path))
    assert all(original[r.result_id] == r.payload for r in readable if r.payload is not None)
    assert len(readable) == N - s.unreadable

    # the fresh outbox's status names the damaged one and how to send what it holds
    status = run_edge("sync", "--status", "--db", path, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"damaged  {found.path} (when set aside: {s.to_send} to send, {s.unreadable} unreadable)" in (
        status.stdout
    )


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from edge.sync.outbox import Outbox
from tests.support.sync_helpers import fill
ob = Outbox(Path(sys.argv[1]), quota_bytes=64 * 1024**2)
print("\\n".join(fill(ob, 20)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # committed in the WAL, never checkpointed
"""


def test_a_damaged_outbox_moves_aside_with_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    _outbox(path)
    writer = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path)], cwd=REPO, capture_output=True, text=True,
        timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    in_wal = set(writer.stdout.split())
    wal = Path(f"{path}-wal").read_bytes()
    assert len(in_wal) == 20 and len(wal) > 0
    _damage(path)
    with Outbox(path, quota_bytes=QUOTA) as ob:
        found = ob.recovered_from
    assert found is not None
    assert Path(f"{found.path}-wal").read_bytes() == wal  # the WAL went with its database
    assert in_wal <= {r.result_id for r in damage.readable_items(found.path)}  # and still belongs to it


def _config(broker: MosquittoBroker, folder: Path) -> Path:
    f = broker.client_files("dev-a")
    config = folder / "edge.toml"
    config.write_text(
        f'[uplink]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n'
        f'password_file = "{f.password_file}"\nsite = "{SITE}"\nconfirm_timeout_s = 5\n'
        f'tls = {{ ca = "{f.ca}", cert = "{f.cert}", key = "{f.key}" }}\n'
    )
    return config


def test_edge_sync_once_sends_what_a_damaged_outbox_still_holds(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3.damaged-20260101T000000Z"  # as a run set it aside
    _outbox(path)
    damaged = _damage(path)
    to_send = _to_send(path)
    assert 0 < len(to_send) < 400
    with mosquitto_broker(tmp_path / "broker", ["dev-a"]) as broker:
        config = _config(broker, tmp_path)
        store, ingest = start_ingest(broker, tmp_path / "ingest.db")
        try:
            once = run_edge(
                "sync", "--once", "--config", config, "--db", path, "--device", "dev-a", cwd=tmp_path
            )
            assert once.returncode == 0, once.stdout + once.stderr
            assert (
                f"{len(to_send)} readable to send" in once.stdout
                and f"{len(to_send)} newly copied" in once.stdout
            )
            wait_for(lambda: set(to_send) <= store.ids(), 30, "the ingest to have every readable result")
            again = run_edge(
                "sync", "--once", "--config", config, "--db", path, "--device", "dev-a", cwd=tmp_path
            )
            assert again.returncode == 0 and "0 newly copied" in again.stdout, again.stdout + again.stderr
        finally:
            ingest.stop()
    assert store.ids() == set(to_send)  # what was readable and unsent: all of it, nothing else
    assert path.read_bytes() == damaged  # only read


def test_damage_met_in_use_is_set_aside_and_the_uplink_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite3"
    original = _outbox(path)
    caplog.set_level(logging.ERROR, logger="edge.sync.outbox")
    with mosquitto_broker(tmp_path / "broker", ["dev-a"]) as broker:
        store, ingest = start_ingest(broker, tmp_path / "ingest.db")
        ob = Outbox(path, quota_bytes=QUOTA)  # the start check passes
        _damage(path)  # then the disk fails under the running outbox
        uplink = Uplink(ob, uplink_config(broker, "dev-a"), device_id="dev-a", site=SITE)
        uplink.start()
        try:
            wait_for(
                lambda: ob.recovered_from is not None, 60, "the damage found", lambda: str(uplink.state())
            )
            new = fill(ob, 30)  # the run goes on: kept in the fresh outbox, and sent
            report = uplink.drain_once(timeout_s=60)
            assert report.drained, report
            assert uplink._thread is not None and uplink._thread.is_alive()
            state = uplink.state()
            assert state.failed is None and state.outbox_error is None and state.connected
            wait_for(lambda: set(new) <= store.ids(), 30, "the new results at the ingest")
        finally:
            uplink.stop()
        found = ob.recovered_from
        assert found is not None and "during use" in found.problem
        assert ob.stats().damaged == str(found.path)
        ob.close()
        try:  # what the damaged file still has to send goes with edge sync --once --db (same device id:
            # run once the run's uplink is gone)
            once = run_edge(
                "sync", "--once", "--config", _config(broker, tmp_path), "--db", found.path,
                "--device", "dev-a", "--timeout", "60", cwd=tmp_path,
            )  # fmt: skip
            assert once.returncode == 0, once.stdout + once.stderr
        finally:
            ingest.stop()
    assert any("OUTBOX DAMAGED" in r.getMessage() for r in caplog.records)
    confirmed_before = {r.result_id for r in damage.readable_items(found.path) if r.confirmed_wall}
    lost = set(original) - store.ids() - confirmed_before
    assert len(lost) == found.survey.unreadable  # only the results on the damaged page are missing
    assert set(new) <= store.ids()


def test_damage_met_in_use_moves_the_file_aside_as_it_was(tmp_path: Path) -> None:
    # Results committed only in the WAL, the main file damaged under the open outbox: setting it
    # aside must neither checkpoint the WAL into the damaged file nor delete it.
    path = tmp_path / "outbox.sqlite3"
    _outbox(path)
    with Outbox(path, quota_bytes=QUOTA) as ob:
        in_wal = {ob.put(_message(i)).result_id for i in range(10)}
        wal = Path(f"{path}-wal").read_bytes()
        damaged = _damage(path)
        assert ob.claim(1000) == []  # met the damage: set aside, and claimed from the fresh outbox
        found = ob.recovered_from
        assert found is not None and "during use" in found.problem
        assert ob.put(_message(0)).kept and ob.stats().queued == 1
    assert found.path.read_bytes() == damaged
    assert Path(f"{found.path}-wal").read_bytes() == wal
    assert in_wal <= {r.result_id for r in damage.readable_items(found.path)}
