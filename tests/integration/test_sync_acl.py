"""The broker's door: ACLs, passwords and client certificates, each shown refusing."""

from __future__ import annotations

import json
import ssl
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge.sync.credentials import tls_context
from edge.sync.outbox import Outbox
from edge.sync.uplink import Uplink
from tests.support.polling import wait_for
from tests.support.sync_helpers import SITE, fill, start_ingest, uplink_config
from tools.sync.broker import ClientFiles, MosquittoBroker

NOT_AUTHORIZED = 0x87
BAD_USER_OR_PASSWORD = 0x86


class Probe:
    """A bare paho v5 client that records CONNACK and PUBACK reason codes."""

    def __init__(
        self, files: ClientFiles, *, username: str | None, password: str | None, name: str = "probe"
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{name}-{username}",
            protocol=mqtt.MQTTv5,
        )
        self.client.tls_set_context(tls_context(files.ca, files.cert, files.key))
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.done = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.connack = reason
        self.done.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self.pubacks[mid] = reason

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self.subacks[mid] = codes

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append((msg.topic, bytes(msg.payload)))

    def subscribe(self, topic: str) -> list[ReasonCode]:
        _, mid = self.client.subscribe(topic, qos=1)
        wait_for(lambda: mid in self.subacks, 10, f"the SUBACK for {topic}")
        return self.subacks[mid]

    def connect(self, broker: MosquittoBroker) -> ReasonCode:
        self.client.connect("127.0.0.1", broker.port, 30)
        self.client.loop_start()
        assert self.done.wait(10), "no CONNACK"
        assert self.connack is not None
        return self.connack

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_device_cannot_publish_on_another_devices_topic(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    store, ingest = start_ingest(mosquitto, tmp_path / "ingest.db")
    a = mosquitto.client_files("dev-a")
    probe = Probe(a, username="dev-a", password=a.password)
    try:
        assert not probe.connect(mosquitto).is_failure
        foreign = probe.client.publish(f"scanners/{SITE}/dev-b/results", b'{"result_id": "forged"}', qos=1)
        own = probe.client.publish(f"scanners/{SITE}/dev-a/results", b'{"result_id": "genuine"}', qos=1)
        wait_for(lambda: len(probe.pubacks) == 2, 10, "both PUBACKs")
        assert probe.pubacks[foreign.mid].value == NOT_AUTHORIZED  # MQTT v5 says why
        assert not probe.pubacks[own.mid].is_failure
        wait_for(lambda: store.counts().stored == 1, 10, "the genuine result")
    finally:
        probe.close()
        ingest.stop()
    assert store.ids() == {"genuine"}  # the forged one was never delivered


def test_uplink_with_another_devices_id_sends_nothing_and_backs_off(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    # dev-a's credentials but device id dev-b: its status and result topics are all dev-b's. Mosquitto
    # 2.0.11 drops such a connection (its retained status is refused); the uplink must keep the
    # results queued, say why, and back off instead of hammering the broker.
    outbox = Outbox(tmp_path / "outbox.db")
    fill(outbox, 5)
    config = uplink_config(mosquitto, "dev-a", username="dev-a", backoff_min_s=0.05, backoff_max_s=0.4)
    uplink = Uplink(outbox, config, device_id="dev-b", site=SITE)
    try:
        report = uplink.drain_once(timeout_s=3)
    finally:
        uplink.stop()
    assert not report.drained and report.sent == 0 and report.remaining == 5
    assert report.last_error is not None
    assert outbox.stats().queued == 5  # nothing counted as delivered
    # Backoff: at most ~3 s / mean delay of the capped jitter (0.2 s) attempts, not hundreds.
    assert uplink.state().reconnects < 40
    outbox.close()


def test_unauthenticated_and_wrong_password_clients_are_refused(mosquitto: MosquittoBroker) -> None:
    a = mosquitto.client_files("dev-a")
    anonymous = Probe(a, username=None, password=None)
    try:
        code = anonymous.connect(mosquitto)
    finally:
        anonymous.close()
    assert code.is_failure and code.value in (NOT_AUTHORIZED, BAD_USER_OR_PASSWORD)
    wrong = Probe(a, username="dev-a", password="not-the-password")
    try:
        code = wrong.connect(mosquitto)
    finally:
        wrong.close()
    assert code.is_failure and code.value in (NOT_AUTHORIZED, BAD_USER_OR_PASSWORD)


def test_client_certificate_from_another_ca_is_refused(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    rogue = mosquitto.rogue_client_files("dev-a")  # right password, untrusted certificate
    probe = Probe(rogue, username="dev-a", password=rogue.password)
    with pytest.raises((ssl.SSLError, OSError)):
        probe.client.connect("127.0.0.1", mosquitto.port, 30)
        # TLS 1.3 may finish the client's side of the handshake first: the refusal then comes on read.
        for _ in range(50):
            rc = probe.client.loop(timeout=0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise OSError(f"connection closed by the broker: {mqtt.error_string(rc)}")
    assert probe.connack is None
    # The uplink with that certificate stays offline and says why.
    outbox = Outbox(tmp_path / "outbox.db")
    fill(outbox, 2)
    config = uplink_config(mosquitto, "dev-a", tls={"ca": rogue.ca, "cert": rogue.cert, "key": rogue.key})
    uplink = Uplink(outbox, config, device_id="dev-a", site=SITE)
    try:
        report = uplink.drain_once(timeout_s=2)
    finally:
        uplink.stop()
    assert not report.drained and not report.connected and report.remaining == 2
    assert report.last_error is not None
    outbox.close()


def _receipt_ids(probe: Probe) -> set[str]:
    return {i for t, p in probe.messages if t.endswith("/receipts") for i in json.loads(p)["ids"]}


def test_receipts_reach_only_their_own_device_and_only_the_ingest_writes_them(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    store, ingest = start_ingest(mosquitto, tmp_path / "ingest.db")
    a, b = mosquitto.client_files("dev-a"), mosquitto.client_files("dev-b")
    dev_a = Probe(a, username="dev-a", password=a.password)
    dev_b = Probe(b, username="dev-b", password=b.password)
    # Forgers on connections of their own: mosquitto 2.0.11 answers a refused publish with PUBACK
    # 0x87 and then drops that connection, which would take the readers' subscriptions with it.
    forger_a = Probe(a, username="dev-a", password=a.password, name="forger")
    forger_b = Probe(b, username="dev-b", password=b.password, name="forger")
    probes = [dev_a, dev_b, forger_a, forger_b]
    try:
        assert not any(p.connect(mosquitto).is_failure for p in probes)
        assert not dev_a.subscribe(f"scanners/{SITE}/dev-a/receipts")[0].is_failure  # its own: allowed
        # dev-b tries to read dev-a's receipts, directly and by wildcard: refused, or granted and
        # then filtered per message by the ACL (mosquitto checks read access at delivery too).
        dev_b.subscribe(f"scanners/{SITE}/dev-a/receipts")
        dev_b.subscribe("scanners/+/+/receipts")
        # Neither device may write a receipt: not for itself (forging its own confirmations) nor another.
        forged_own = forger_a.client.publish(
            f"scanners/{SITE}/dev-a/receipts", b'{"ids": ["forged-a"]}', qos=1
        )
        forged_other = forger_b.client.publish(
            f"scanners/{SITE}/dev-a/receipts", b'{"ids": ["forged-b"]}', qos=1
        )
        wait_for(lambda: forger_a.pubacks and forger_b.pubacks, 10, "the forgers' PUBACKs")
        assert forger_a.pubacks[forged_own.mid].value == NOT_AUTHORIZED
        assert forger_b.pubacks[forged_other.mid].value == NOT_AUTHORIZED
        # The ingest stores dev-a's result and writes its receipt to dev-a, and only to dev-a.
        dev_a.client.publish(f"scanners/{SITE}/dev-a/results", b'{"result_id": "r-a1"}', qos=1)
        wait_for(
            lambda: "r-a1" in _receipt_ids(dev_a), 10, "dev-a's receipt", why=lambda: str(ingest.last_error)
        )
        # dev-b's own result gets dev-b's receipt (the wildcard grants it its own), never dev-a's.
        dev_b.client.publish(f"scanners/{SITE}/dev-b/results", b'{"result_id": "r-b1"}', qos=1)
        wait_for(lambda: "r-b1" in _receipt_ids(dev_b), 10, "dev-b's receipt")
        dev_a.client.publish(f"scanners/{SITE}/dev-a/results", b'{"result_id": "r-a2"}', qos=1)
        wait_for(lambda: "r-a2" in _receipt_ids(dev_a), 10, "dev-a's second receipt")
    finally:
        for p in probes:
            p.close()
        ingest.stop()
    assert _receipt_ids(dev_a) == {"r-a1", "r-a2"}  # no forged receipt was delivered
    assert {t for t, _ in dev_b.messages} == {f"scanners/{SITE}/dev-b/receipts"}
    assert _receipt_ids(dev_b) == {"r-b1"}
    assert ingest.last_error is None  # the ingest user may write every device's receipts
    assert store.ids() == {"r-a1", "r-a2", "r-b1"}
