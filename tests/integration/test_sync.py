"""Offline for a whole run, then connected: every result arrives once (after de-duplication).

Against a real mosquitto (TLS, passwords, ACLs) started by the ``mosquitto`` fixture.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edge.sync.outbox import Outbox
from edge.sync.uplink import Uplink
from tests.support.paths import EDGE, REPO
from tests.support.polling import wait_for
from tests.support.sync_helpers import SITE, fill, start_ingest, uplink_config
from tools.sync.broker import MosquittoBroker

# The suite runs 2,000 (10-15 s on the 2-core dev box, loaded); `python -m tools.sync.soak
# --broker-kills 0 --runtime-kills 0` runs the 10,000 (~27 s there: 5 s of fsynced puts, 20 s of
# drain to the last receipt), and with its default faults, 10,000 through 20 + 20 kill -9.
N_RESULTS = 10_000  # the acceptance figure: about 25 s here (fill 5 s, drain 20 s)


def test_offline_whole_run_then_connected_delivers_every_result(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    # The cloud side exists before the device goes offline, as in a deployment: the ingest's
    # persistent session (its subscription) is on the broker, so whatever arrives while the ingest
    # is still reconnecting waits for it. (Started after the broker's return instead, the ingest
    # raced the uplink's reconnect: on a loaded machine the uplink often published first, to no
    # subscriber, and the broker dropped those results: the old flaky timeout.)
    store, ingest = start_ingest(mosquitto, tmp_path / "ingest.db")
    mosquitto.stop()  # the network is away for the whole run (a clean stop saves the ingest's session)
    outbox = Outbox(tmp_path / "outbox.db")
    uplink = Uplink(outbox, uplink_config(mosquitto, "dev-a"), device_id="dev-a", site=SITE)
    uplink.start()
    try:
        ids = fill(outbox, N_RESULTS)
        wait_for(lambda: uplink.state().queued == N_RESULTS, 60, "the uplink to see the backlog")
        state = uplink.state()
        assert not state.connected and state.sent_session == 0
        assert state.last_error is not None and "cannot connect" in state.last_error
        assert uplink.hud_text().startswith(f"sync: offline, {N_RESULTS} queued, oldest ")

        mosquitto.start()  # the network returns; the uplink and the ingest reconnect by themselves
        try:
            report = uplink.drain_once(timeout_s=300)
            assert report.drained, report
            # report.sent counts PUBACKs this drain handled; a receipt can confirm a result before
            # its PUBACK is processed, so the outbox's own counts below are the ones to check.
            assert report.remaining == 0 and report.sent <= N_RESULTS
            # drained = every result confirmed by the ingest's receipt: it has them all, committed
            assert report.confirmed == N_RESULTS and report.awaiting_receipt == 0
            wait_for(
                lambda: store.counts().stored >= N_RESULTS,
                300,
                "the ingest to store everything",
                why=lambda: (
                    f"{store.counts()} ingest error {ingest.last_error!r} connected "
                    f"{ingest.connected.is_set()}\nbroker log:\n{mosquitto.log_tail(40)}"
                ),
            )
        finally:
            ingest.stop()
        counts = store.counts()
        stats = outbox.stats()
        assert counts.stored == stats.sent == stats.confirmed == N_RESULTS  # ingest count == outbox count
        assert store.ids() == set(ids)  # nothing lost, nothing foreign, one row per id
        assert counts.received == counts.stored + counts.duplicates  # raw duplicates are counted
        assert counts.invalid == 0
        print(f"raw duplicates: {counts.duplicates} of {counts.received} deliveries")
        assert uplink.hud_text() == "sync: ok, 0 queued"
    finally:
        uplink.stop()
        ingest.stop()
        outbox.close()


def test_sync_once_and_status_commands(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    with Outbox(db) as outbox:
        ids = fill(outbox, 50)
    f = mosquitto.client_files("dev-b")
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[uplink]\nenabled = true\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        f'password_file = "{f.password_file}"\nsite = "{SITE}"\nconfirm_timeout_s = 5\n'
        f'tls = {{ ca = "{f.ca}", cert = "{f.cert}", key = "{f.key}" }}\n'
    )
    status = subprocess.run(
        [*EDGE, "sync", "--status", "--db", str(db), "--json"], capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["queued"] == 50

    store, ingest = start_ingest(mosquitto, tmp_path / "ingest.db")
    try:
        once = subprocess.run(
            [*EDGE, "sync", "--once", "--config", str(config), "--db", str(db), "--device", "dev-b"],
            capture_output=True, text=True, cwd=REPO, timeout=120,
        )  # fmt: skip
        assert once.returncode == 0, once.stdout + once.stderr
        assert "sent 50 " in once.stdout and "0 still queued" in once.stdout
        assert "50 confirmed by receipts, 0 awaiting receipt" in once.stdout
        wait_for(lambda: store.counts().stored == 50, 30, "the ingest")
    finally:
        ingest.stop()
    assert store.ids() == set(ids)
    status = subprocess.run([*EDGE, "sync", "--status", "--db", str(db)], capture_output=True, text=True)
    assert "queued   0 " in status.stdout and "sent     50" in status.stdout
    assert "receipts 50 confirmed, 0 awaiting receipt" in status.stdout


def test_sync_once_fails_when_the_broker_is_away(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    with Outbox(db) as outbox:
        fill(outbox, 3)
    mosquitto.kill9()
    f = mosquitto.client_files("dev-a")
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[uplink]\nenabled = true\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        "backoff_min_s = 0.1\nbackoff_max_s = 0.2\n"
        f'password_file = "{f.password_file}"\n'
        f'tls = {{ ca = "{f.ca}", cert = "{f.cert}", key = "{f.key}" }}\n'
    )
    once = subprocess.run(
        [*EDGE, "sync", "--once", "--config", str(config), "--db", str(db),
         "--device", "dev-a", "--timeout", "2"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert once.returncode == 1
    assert "3 still queued" in once.stdout and "cannot connect" in once.stdout
