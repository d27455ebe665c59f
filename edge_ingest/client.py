"""The ingest's MQTT side: a shared subscription, committing in batches, acking, and receipts.

It subscribes with an MQTT v5 shared subscription (``$share/<group>/scanners/+/+/results`` and
``.../feedback``), so several ingest processes (on one broker or on a cluster's nodes) share the
load, each message going to one of them. Messages are acknowledged by hand, only after the batch
holding them is committed: a crash of the ingest loses nothing, the broker delivers again.

The session is persistent (clean start off, a session expiry), so what arrives while an ingest
is away is queued by the broker for it.

Receipts: after a batch is committed, the ids it held (new ones and duplicates alike: a duplicate
is a device that has not heard it is stored) are published, QoS 1, to each device's
``<prefix>/<site>/<device>/receipts``, gathered per device for up to ``RECEIPT_MAX_DELAY_S`` or
``RECEIPT_BATCH`` ids. The device marks them confirmed and stops re-sending them. A receipt is
only ever sent for what is committed, so a receipt lost on the way costs a re-send, never a result.
The receipt's payload and the reconnect backoff are the device's own (``edge.sync.policy``): one
spelling of the wire format on both ends.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.sync.policy import Backoff, receipt_payload
from edge_ingest.store import IngestStore

log = logging.getLogger(__name__)

COMMIT_BATCH = 500
COMMIT_MAX_DELAY_S = 0.05
RECEIPT_BATCH = 200  # ids per receipt message, at most
RECEIPT_MAX_DELAY_S = 0.1  # a device hears about a committed id at most this long after the commit
SESSION_EXPIRY_S = 7 * 86400


@dataclass(frozen=True)
class BrokerLogin:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None


class Ingest:
    """One ingest client: a thread running paho's loop, committing and acking in batches."""

    def __init__(
        self,
        store: IngestStore,
        login: BrokerLogin,
        *,
        group: str,
        client_id: str,
        topic_prefix: str = "scanners",
        backoff_min_s: float = 0.2,
        backoff_max_s: float = 5.0,
        receipts: bool = True,
    ) -> None:
        self.store = store
        self.login = login
        self.client_id = client_id
        self.topic_prefix = topic_prefix
        self.receipts = receipts
        # (site, device) -> committed ids not yet in a receipt; kept across reconnects
        self._receipt_ids: dict[tuple[str, str], list[str]] = {}
        self._receipt_since: dict[tuple[str, str], float] = {}
        self.receipts_sent = 0  # receipt messages published
        self.receipt_ids_sent = 0  # ids named in them
        self.filters = [f"$share/{group}/{topic_prefix}/+/+/{leaf}" for leaf in ("results", "feedback")]
        self._backoff = Backoff(backoff_min_s, backoff_max_s)
        self._pending: list[tuple[int, int, str, bytes]] = []  # mid, qos, topic, payload
        self._first_pending = 0.0
        self._client: mqtt.Client | None = None
        self._next_attempt = 0.0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"ingest-{self.client_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
        except Exception as exc:  # a dead ingest must say so, not just stop storing
            log.exception("ingest %s: thread failed", self.client_id)
            self.last_error = f"ingest thread failed: {exc!r}"
        finally:
            self._drop_connection()

    def _step(self) -> None:
        now = time.monotonic()
        if self._client is None:
            if now < self._next_attempt:
                self._stop.wait(min(0.1, self._next_attempt - now))
                return
            self._connect()
            return
        rc = self._client.loop(timeout=0.02)
        if rc != mqtt.MQTT_ERR_SUCCESS and self._client is not None:
            self._lost(f"connection lost ({mqtt.error_string(rc)})")
            return
        if self._pending and (
            len(self._pending) >= COMMIT_BATCH or now - self._first_pending >= COMMIT_MAX_DELAY_S
        ):
            self._commit_and_ack()
        if self._receipt_ids and self.connected.is_set():
            self._send_receipts(now)

    def _send_receipts(self, now: float, *, all_now: bool = False) -> None:
        client = self._client
        if client is None:
            return
        for key in list(self._receipt_ids):
            ids = self._receipt_ids[key]
            young = now - self._receipt_since[key] < RECEIPT_MAX_DELAY_S
            if not all_now and len(ids) < RECEIPT_BATCH and young:
                continue
            site, device = key
            topic = f"{self.topic_prefix}/{site}/{device}/receipts"
            for i in range(0, len(ids), RECEIPT_BATCH):
                part = ids[i : i + RECEIPT_BATCH]
                info = client.publish(topic, receipt_payload(part, self.client_id), qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    # Keep the rest for the next connection; what was published stays published.
                    self._receipt_ids[key] = ids[i:]
                    self.last_error = f"receipt publish failed: {mqtt.error_string(info.rc)}"
                    return
                self.receipts_sent += 1
                self.receipt_ids_sent += len(part)
            del self._receipt_ids[key], self._receipt_since[key]

    def _connect(self) -> None:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        if self.login.username is not None:
            client.username_pw_set(self.login.username, self.login.password)
        if self.login.tls is not None:
            client.tls_set_context(self.login.tls)
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_receipt_ack
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            client.connect(self.login.host, self.login.port, 30, clean_start=False, properties=props)
        except (OSError, ssl.SSLError) as exc:
            self._fail(f"cannot connect to {self.login.host}:{self.login.port}: {exc}")
            return
        self._client = client

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            self._lost(f"broker refused the connection: {reason}")
            return
        self._backoff.reset()
        self.connected.set()
        client.subscribe([(f, 1) for f in self.filters])
        log.info("ingest %s: connected (session present: %s)", self.client_id, flags.session_present)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any) -> None:
        bad = [str(c) for c in codes if c.is_failure]
        if bad:
            self.last_error = f"subscription refused: {', '.join(bad)}"
            log.error("ingest %s: %s", self.client_id, self.last_error)
            return
        self.subscribed.set()

    def _on_receipt_ack(self, _c: mqtt.Client, _u: Any, _mid: int, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:  # the ACL does not let this user write receipts: devices re-send forever
            if self.last_error is None or "receipt refused" not in self.last_error:
                log.error("ingest %s: receipt refused by the broker: %s (check the ACL)", self.client_id,
                          reason)  # fmt: skip
            self.last_error = f"receipt refused by the broker: {reason}"

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending.append((msg.mid, msg.qos, msg.topic, bytes(msg.payload)))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if self._client is not None and not self._stop.is_set():
            self._lost(f"disconnected: {reason}")

    def _commit_and_ack(self) -> None:
        batch, self._pending = self._pending, []
        _, _, _, held = self.store.add_batch(self.client_id, [(t, p) for _, _, t, p in batch])
        if self.receipts:
            now = time.monotonic()
            for site, device, ident in held:
                key = (site, device)
                if key not in self._receipt_ids:
                    self._receipt_ids[key] = []
                    self._receipt_since[key] = now
                self._receipt_ids[key].append(ident)
        client = self._client
        if client is None:
            return  # the connection is gone: the broker delivers these again (counted as duplicates)
        for mid, qos, _, _ in batch:
            if qos > 0:
                client.ack(mid, qos)

    def _lost(self, why: str) -> None:
        self._drop_connection()
        self._fail(why)

    def _drop_connection(self) -> None:
        if self._pending:
            # Stored now; acked if the connection still takes it, else delivered again (a duplicate).
            self._commit_and_ack()
        if self._receipt_ids and self.connected.is_set():
            self._send_receipts(time.monotonic(), all_now=True)  # before the line goes, if it can
        client, self._client = self._client, None
        self.connected.clear()
        self.subscribed.clear()
        if client is not None:
            try:
                client.loop_write()
                client.disconnect()
            except Exception:
                log.debug("ingest: disconnect failed", exc_info=True)

    def _fail(self, why: str) -> None:
        self.last_error = why
        delay = self._backoff.next_delay()
        self._next_attempt = time.monotonic() + delay
        log.warning("ingest %s: %s; retrying in %.1f s", self.client_id, why, delay)
