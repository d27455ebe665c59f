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
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.sync import damage
from edge.sync.outbox import Outbox
from edge.sync.status import outbox_text
from edge.sync.uplink import Uplink
from tests.support.paths import REPO, run_edge
from tests.support.polling import wait_for
from tests.support.sync_helpers import (
    DAMAGE_N,
    DAMAGE_QUOTA,
    SITE,
    damage_mid_file,
    fill,
    mosquitto_broker,
    outbox_in_three_states,
    padded_message,
    readable_to_send,
    start_ingest,
    uplink_config,
)
from tools.sync.broker import MosquittoBroker


def test_a_damaged_outbox_is_reported_then_set_aside_intact_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite3"
    original = outbox_in_three_states(path)
    damaged = damage_mid_file(path)

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
    with Outbox(path, quota_bytes=DAMAGE_QUOTA) as ob:
        found = ob.recovered_from
        assert found is not None and found.original == path
        assert re.fullmatch(r"outbox\.sqlite3\.damaged-\d{8}T\d{6}Z", found.path.name)
        assert found.path.read_bytes() == damaged  # moved aside intact
        s = found.survey
        assert s.unreadable > 0 and s.to_send + s.confirmed + s.unreadable == DAMAGE_N
        assert (s.queued <= 300, s.awaiting_receipt <= 100, s.confirmed <= 100) == (True, True, True)
        logged = [r.getMessage() for r in caplog.records if "OUTBOX DAMAGED" in r.getMessage()]
        assert any(str(found.path) in m and f"edge sync --once --db {found.path}" in m for m in logged)
        assert ob.put(padded_message(0)).kept  # what comes now is kept
        stats = ob.stats()
        assert stats.queued == 1 and stats.damaged == str(found.path)
        assert (outbox_text(stats, 0) or "").startswith(f"OUTBOX DAMAGED: SET ASIDE AS {found.path.name}")
    assert damage.check(path) is None
    # what can be read back is exactly what was put, never a garbled row
    readable = list(damage.readable_items(found.path))
    assert all(original[r.result_id] == r.payload for r in readable if r.payload is not None)
    assert len(readable) == DAMAGE_N - s.unreadable

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
    outbox_in_three_states(path)
    writer = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path)], cwd=REPO, capture_output=True, text=True,
        timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    in_wal = set(writer.stdout.split())
    wal = Path(f"{path}-wal").read_bytes()
    assert len(in_wal) == 20 and len(wal) > 0
    damage_mid_file(path)
    with Outbox(path, quota_bytes=DAMAGE_QUOTA) as ob:
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
    outbox_in_three_states(path)
    damaged = damage_mid_file(path)
    to_send = readable_to_send(path)
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
    original = outbox_in_three_states(path)
    caplog.set_level(logging.ERROR, logger="edge.sync.outbox")
    with mosquitto_broker(tmp_path / "broker", ["dev-a"]) as broker:
        store, ingest = start_ingest(broker, tmp_path / "ingest.db")
        ob = Outbox(path, quota_bytes=DAMAGE_QUOTA)  # the start check passes
        damage_mid_file(path)  # then the disk fails under the running outbox
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
    outbox_in_three_states(path)
    with Outbox(path, quota_bytes=DAMAGE_QUOTA) as ob:
        in_wal = {ob.put(padded_message(i)).result_id for i in range(10)}
        wal = Path(f"{path}-wal").read_bytes()
        damaged = damage_mid_file(path)
        assert ob.claim(1000) == []  # met the damage: set aside, and claimed from the fresh outbox
        found = ob.recovered_from
        assert found is not None and "during use" in found.problem
        assert ob.put(padded_message(0)).kept and ob.stats().queued == 1
    assert found.path.read_bytes() == damaged
    assert Path(f"{found.path}-wal").read_bytes() == wal
    assert in_wal <= {r.result_id for r in damage.readable_items(found.path)}
