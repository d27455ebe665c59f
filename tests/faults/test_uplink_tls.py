"""TLS failures against a real mosquitto are reported as TLS errors naming what failed, and never
taken for a broker that does not speak MQTT v5 (which made the uplink fall back to 3.1.1 and say
"broker does not take MQTT v5" for a client certificate from another CA)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from edge.sync.outbox import Outbox
from edge.sync.status import SyncState, sync_text
from edge.sync.uplink import Uplink
from tests.support.polling import wait_for
from tests.support.sync_helpers import SITE, fill, mosquitto_broker, uplink_config
from tools.sync.broker import MosquittoBroker, Pki


def _attempts(caplog: pytest.LogCaptureFixture) -> int:
    return sum("TLS handshake with" in r.getMessage() for r in caplog.records)


def _fail_tls(
    broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture, tls: dict[str, Any]
) -> tuple[Uplink, SyncState]:
    """An uplink with these TLS files, run until it has failed several times; its state then."""
    caplog.set_level(logging.INFO, logger="edge.sync.uplink")
    caplog.clear()
    outbox = Outbox(tmp_path / f"ob-{len(list(tmp_path.glob('ob-*')))}.sqlite3")
    fill(outbox, 2)
    uplink = Uplink(outbox, uplink_config(broker, "dev-a", tls=tls), device_id="dev-a", site=SITE)
    uplink.start()
    try:
        wait_for(
            lambda: _attempts(caplog) >= 4, 30, "four failed TLS handshakes", lambda: str(uplink.state())
        )
        state = uplink.state()
    finally:
        uplink.stop()
    assert outbox.stats().queued == 2  # nothing lost, nothing marked
    outbox.close()
    assert not state.connected and uplink.protocol == "5"  # never fell back
    assert not any("MQTT v5" in r.getMessage() or "3.1.1" in r.getMessage() for r in caplog.records)
    assert state.last_error is not None and state.last_error.startswith(
        f"TLS handshake with 127.0.0.1:{broker.port}"
    )
    assert sync_text(state).startswith("sync: TLS ERROR: ")
    return uplink, state


def test_client_certificate_from_another_ca(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with mosquitto_broker(tmp_path / "broker", ["dev-a"]) as broker:
        second = Pki(tmp_path / "second-ca", ca_name="second CA")
        cert, key = second.issue("dev-a")  # right name and password, signed by a CA the broker does not know
        good = broker.client_files("dev-a")
        _, state = _fail_tls(broker, tmp_path, caplog, {"ca": good.ca, "cert": cert, "key": key})
        # The broker's alert names the fault; when its close wins the race with the alert, the
        # unanswered close still names the certificate. Never the MQTT version.
        assert state.tls_error is not None and str(cert) in state.tls_error
        alert = f"the broker does not trust our client certificate (alert: unknown CA) ({cert})"
        closed = f"closed the TLS connection unanswered: did it refuse our client certificate {cert}?"
        failures = [r.getMessage() for r in caplog.records if "TLS handshake with" in r.getMessage()]
        assert failures and all(alert in m or closed in m for m in failures), failures
        # the same broker takes the device's own certificate, on MQTT v5
        outbox = Outbox(tmp_path / "good.sqlite3")
        fill(outbox, 2)
        uplink = Uplink(outbox, uplink_config(broker, "dev-a", receipts=False), device_id="dev-a", site=SITE)
        try:
            report = uplink.drain_once(timeout_s=30)
        finally:
            uplink.stop()
        outbox.close()
        assert report.drained and report.sent == 2 and uplink.protocol == "5", report


def test_broker_certificate_from_another_ca(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with mosquitto_broker(tmp_path / "broker", ["dev-a"]) as broker:
        second = Pki(tmp_path / "second-ca", ca_name="second CA")
        good = broker.client_files("dev-a")
        _, state = _fail_tls(
            broker, tmp_path, caplog, {"ca": second.ca_cert, "cert": good.cert, "key": good.key}
        )
        assert state.tls_error is not None
        assert state.tls_error.startswith(
            f"the broker's certificate did not verify against the CA in {second.ca_cert}"
        )


def test_no_client_certificate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with mosquitto_broker(tmp_path / "broker", ["dev-a"]) as broker:
        good = broker.client_files("dev-a")
        _, state = _fail_tls(broker, tmp_path, caplog, {"ca": good.ca})
        assert state.tls_error is not None and "client certificate" in state.tls_error
