# Over 400 lines: one thread owns one paho client; its callbacks and in-flight map share lock-free state.
"""MQTT uplink: publishes the outbox to a broker, marking a result sent only on its PUBACK and
confirmed only on the ingest's receipt.

One thread owns one paho client (client id = device id) and runs its network loop itself, so
PUBACK callbacks, the in-flight map and the outbox calls all happen on that thread, lock-free.
The outbox, not paho's memory queue, owns durability:

- a bounded window of results is in flight (claimed from the outbox, published QoS 1);
- a PUBACK (with a success reason code under MQTT v5) moves its result to the batch that is
  committed with ``Outbox.mark_sent`` a few milliseconds later; a refusal (e.g. 0x87 not
  authorised) leaves it queued, counted and excluded for the rest of the session;
- on a disconnect everything in flight is simply claimable again: it never left the queue.
  Each connection gets a fresh paho client, so paho never re-sends behind the outbox's back (the
  cost: a result whose PUBACK was lost is sent twice; the ingest de-duplicates on result id);
- reconnects wait with exponential backoff and full jitter; MQTT v5 falls back to 3.1.1 only once
  the broker says it does not speak v5 (a TLS failure is reported as one, naming what failed);
- an outbox that fails (a database error, a damaged or closed file) never ends the thread: the
  error is in the state and on the HUD ("sync: OUTBOX ERROR: ..."), the connection is kept, and
  the outbox is tried again with a backoff; PUBACKs and receipts not yet committed wait in memory;
- a retained status ("online" on connect, "offline" on stop, and "offline" as the last will);
- receipts (``[uplink] receipts``, on by default): on every connection the uplink subscribes to
  its own ``<base>/receipts``; the ingest publishes there the ids it has committed, and those
  are marked confirmed (``Outbox.mark_confirmed``). A PUBACK only means the broker has the
  message in memory; a broker killed before it delivered or saved it loses it. So a sent result
  with no receipt within ``confirm_timeout_s`` is claimed and sent again (the ingest stores it
  once and confirms it again). Delivery is then end to end, whatever the broker does.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import Config, UplinkConfig
from edge.errors import ConfigError
from edge.sync.contract import DrainReport, ItemLike, OutboxLike, StatsLike
from edge.sync.credentials import describe_tls_error, read_password, tls_context
from edge.sync.policy import (
    Backoff,
    Topics,
    parse_receipt,
    should_fall_back,
    status_payload,
)
from edge.sync.status import SyncState, sync_text

log = logging.getLogger(__name__)

ACK_BATCH = 256  # settled PUBACKs committed together: one SQLite commit per batch, not per result
ACK_MAX_DELAY_S = 0.05  # ... or after this long, so "sent" is never far behind the broker
CLAIM_BATCH = 256  # items claimed from the outbox at once into the local send queue
IDLE_CLAIM_EVERY_S = 0.1  # how often an empty outbox is asked again
STATS_EVERY_S = 0.25
CONNACK_TIMEOUT_S = 10.0
RECEIPT_SESSION_S = 3600  # MQTT v5 session expiry with receipts: receipts wait this long for us
STABLE_AFTER_S = 10.0  # a connection that lasted this long resets the backoff; a flapping one does not
OUTBOX_RETRY_MIN_S = 0.5  # a failing outbox is asked again after this long, doubling ...
OUTBOX_RETRY_MAX_S = 30.0  # ... up to this
_T = TypeVar("_T")


class _OutboxFailed(Exception):
    """An outbox call failed; the uplink reports it and tries again later, keeping its connection."""


class _PahoErrors(logging.Logger):
    """paho's logger for one connection, keeping the last socket error paho met: paho reports a
    failed read only as "connection lost", and only the exception tells a TLS alert (a client
    certificate refused) from a broker hanging up on an MQTT v5 CONNECT."""

    def __init__(self) -> None:
        super().__init__("edge.sync.uplink.paho")
        self.socket_error: OSError | None = None

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        for arg in args:
            if isinstance(arg, OSError):
                self.socket_error = arg
        if level >= logging.ERROR:
            log.debug("paho: %s %s", msg, args)


class Uplink:
    def __init__(
        self,
        outbox: OutboxLike,
        config: UplinkConfig,
        *,
        device_id: str,
        site: str,
        password: str | None = None,
        client_factory: Callable[..., mqtt.Client] = mqtt.Client,
    ) -> None:
        self.config = config
        self.device_id = device_id
        try:
            self.topics = Topics(config.topic_prefix, config.site or site, device_id)
        except ValueError as exc:
            raise ConfigError(f"[uplink]: {exc}") from exc
        self._outbox = outbox
        self._username = config.username or device_id
        if password is None and config.password_file is not None:
            password = read_password(config.password_file)
        self._password = password
        self._tls = tls_context(config.tls.ca, config.tls.cert, config.tls.key) if config.tls.ca else None
        self._factory = client_factory
        self._backoff = Backoff(config.backoff_min_s, config.backoff_max_s)
        self.protocol = config.protocol
        # Owned by the uplink thread:
        self._client: mqtt.Client | None = None
        self._connected = False
        self._connack = False
        self._connect_started = 0.0
        self._connected_at = 0.0
        self._next_attempt = 0.0
        self._inflight: dict[int, str] = {}  # mid -> result id
        self._acked: deque[tuple[float, str]] = deque()  # (PUBACK time, result id), oldest first
        self._ready: deque[ItemLike] = deque()  # claimed, not yet published
        self._pending_commit: list[str] = []  # settled PUBACKs waiting for the next commit
        self._pending_since = 0.0
        self._receipted: list[str] = []  # ids named by receipts, waiting for the next commit
        self._receipt_mids: list[tuple[int, int]] = []  # (mid, qos) of those receipts, acked after it
        self._receipted_since = 0.0
        self._subscribed = False  # the receipts subscription was granted on this connection
        self._refused: set[str] = set()
        self._next_claim = 0.0
        self._next_stats = 0.0
        self._paho: _PahoErrors | None = None  # the current client's socket errors
        self._fallback_tentative = False  # fell back on a bare hang-up: undone if 3.1.1 fares no better
        self._hang_ups_not_version = False  # ... and once undone, hang-ups no longer mean the version
        self._outbox_backoff = Backoff(OUTBOX_RETRY_MIN_S, OUTBOX_RETRY_MAX_S)
        self._outbox_retry_at = 0.0
        # Shared with other threads (under the lock):
        self._lock = threading.Lock()
        self._stats: StatsLike | None = None
        self._snapshot_idle = False  # stats taken with nothing in flight or waiting to be committed
        self._sent_session = 0
        self._confirmed_session = 0
        self._bad_receipts = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self._outbox_error: str | None = None  # the outbox fails: nothing is claimed or marked
        self._tls_error: str | None = None  # the last connect failed in TLS (cleared on CONNACK)
        self._failed: str | None = None  # the thread ended on an unexpected error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loop_at: float | None = None  # time.monotonic() its loop last went round (the watchdog)

    # -- public --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()
        log.info(
            "uplink: %s as %s to %s:%d (%s)",
            self.topics.base,
            self.device_id,
            self.config.host,
            self.config.port,
            "TLS" if self._tls else "no TLS",
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        """Say "offline", commit every PUBACK received, disconnect, join the thread."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("uplink: thread did not stop within %.1f s", timeout_s)
        self._thread = None

    def drain_once(self, timeout_s: float) -> DrainReport:
        """Send until nothing claimable is queued (or ``timeout_s`` passes); starts the uplink if needed."""
        self.start()
        t0 = time.monotonic()
        sent0, confirmed0 = self._sent_session, self._confirmed_session
        drained = False
        while time.monotonic() - t0 < timeout_s:
            with self._lock:
                stats, idle = self._stats, self._snapshot_idle
                refused = len(self._refused)
            unconfirmed = stats.awaiting_receipt if stats is not None and self.config.receipts else 0
            if stats is not None and idle and stats.queued <= refused and not unconfirmed:
                drained = True
                break
            if self._failed is not None:
                break  # the thread is gone: nothing more will be sent
            time.sleep(0.05)
        st = self.state()
        return DrainReport(
            drained=drained,
            sent=st.sent_session - sent0,
            remaining=st.queued,
            confirmed=st.confirmed_session - confirmed0,
            awaiting_receipt=st.awaiting_receipt,
            refused=st.refused_session,
            elapsed_s=time.monotonic() - t0,
            connected=st.connected,
            last_error=st.last_error,
        )

    def state(self) -> SyncState:
        with self._lock:
            stats = self._stats
            return SyncState(
                enabled=True,
                connected=self._connected,
                protocol=self.protocol if self._connected else None,
                queued=stats.queued if stats else None,
                oldest_queued_age_s=stats.oldest_queued_age_s if stats else None,
                last_success_wall=stats.last_sent_wall if stats else None,
                in_flight=len(self._inflight),
                sent_session=self._sent_session,
                refused_session=len(self._refused),
                reconnects=self._reconnects,
                last_error=self._last_error,
                receipts=self.config.receipts,
                awaiting_receipt=stats.awaiting_receipt if stats else None,
                confirmed=stats.confirmed if stats else None,
                confirmed_session=self._confirmed_session,
                outbox_error=self._outbox_error,
                tls_error=self._tls_error,
                failed=self._failed,
            )

    def hud_text(self) -> str:
        return sync_text(self.state())

    # -- the uplink thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.loop_at = time.monotonic()
                self._step()
        except Exception as exc:  # a bug must not pass silently: log it and leave the state saying so
            log.exception("uplink thread failed")
            self._set_error(f"uplink thread failed: {exc!r}")
            with self._lock:
                self._failed = f"uplink thread failed: {exc!r}"
        finally:
            self._shutdown()

    def _step(self) -> None:
        try:
            self._step_once(time.monotonic())
        except _OutboxFailed as exc:
            self._outbox_failed(str(exc))

    def _step_once(self, now: float) -> None:
        outbox_ok = now >= self._outbox_retry_at  # a failing outbox rests between tries
        if self._client is None:
            if now >= self._next_attempt:
                self._connect()
            else:
                if outbox_ok:
                    self._refresh_stats(now)
                self._stop.wait(min(0.1, self._next_attempt - now))
            return
        rc = self._client.loop(timeout=0.02)
        if rc != mqtt.MQTT_ERR_SUCCESS and self._client is not None:
            self._lost(f"connection lost ({mqtt.error_string(rc)})")
            return
        if not self._connack and now - self._connect_started > CONNACK_TIMEOUT_S:
            self._lost("no CONNACK from the broker", closed_before_connack=False)
            return
        if not outbox_ok:
            return
        if self._connected:
            self._fill_window(now)
        self._flush_acks(now)
        self._flush_receipts(now)
        self._refresh_stats(now)

    def _ob(self, what: str, call: Callable[[], _T]) -> _T:
        """One outbox call: any failure becomes _OutboxFailed, reported rather than fatal."""
        try:
            result = call()
        except Exception as exc:  # sqlite3 errors, OutboxError, a closed outbox: all reported
            raise _OutboxFailed(f"{what}: {type(exc).__name__}: {exc}") from exc
        if self._outbox_error is not None:
            log.warning("uplink: the outbox answers again (%s)", what)
            self._outbox_backoff.reset()
            with self._lock:
                self._outbox_error = None
        return result

    def _outbox_failed(self, why: str) -> None:
        delay = max(OUTBOX_RETRY_MIN_S, self._outbox_backoff.next_delay())
        self._outbox_retry_at = time.monotonic() + delay
        if why != self._outbox_error:
            log.error("uplink: OUTBOX ERROR: %s; nothing is claimed or marked sent until it answers", why)
        with self._lock:
            self._outbox_error = why
            self._last_error = f"outbox: {why}"

    def _new_client(self) -> mqtt.Client:
        v5 = self.protocol == "5"
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": self.device_id,
            "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            "reconnect_on_failure": False,
            "manual_ack": True,  # a receipt is acknowledged once its ids are committed as confirmed
        }
        if not v5:
            kwargs["clean_session"] = True
        client = self._factory(**kwargs)
        client.max_inflight_messages_set(self.config.inflight_window + 1)  # +1: the status message
        client.max_queued_messages_set(0)
        self._paho = _PahoErrors()
        client.enable_logger(self._paho)
        if self._password is not None or self.config.username:
            client.username_pw_set(self._username, self._password)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.will_set(self.topics.status, status_payload(self.device_id, "offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_receipt
        client.on_subscribe = self._on_subscribe
        return client

    def _connect(self) -> None:
        client = self._new_client()
        self._connack = False
        self._connect_started = time.monotonic()
        try:
            if self.protocol == "5":
                # The outbox re-sends whatever was in flight (the fresh paho client has nothing to
                # resume). With receipts the session is kept a while all the same: receipts the
                # ingest sends while we reconnect (or restart) wait in it instead of being lost,
                # which would cost a re-send of each result they name after confirm_timeout_s.
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = RECEIPT_SESSION_S if self.config.receipts else 0
                client.connect(
                    self.config.host,
                    self.config.port,
                    self.config.keepalive_s,
                    clean_start=not self.config.receipts,
                    properties=props,
                )
            else:
                client.connect(self.config.host, self.config.port, self.config.keepalive_s)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            if isinstance(exc, ssl.SSLError):
                self._fail(self._tls_failed(exc))
            else:
                self._fail(f"cannot connect to {self.config.host}:{self.config.port}: {exc}")
            return
        self._client = client

    def _tls_failed(self, exc: OSError) -> str:
        what = describe_tls_error(exc, ca=self.config.tls.ca, cert=self.config.tls.cert)
        with self._lock:
            self._tls_error = what
        return f"TLS handshake with {self.config.host}:{self.config.port} failed: {what}"

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _props: Any) -> None:
        self._connack = True
        if reason.is_failure:
            code = reason.value
            self._lost(f"broker refused the connection: {reason} ({code:#04x})", reason_code=code)
            return
        with self._lock:
            self._connected = True
            self._tls_error = None
        self._fallback_tentative = self._hang_ups_not_version = False  # this protocol works here
        self._connected_at = time.monotonic()
        log.info("uplink: connected (MQTT %s)", self.protocol)
        client.publish(self.topics.status, status_payload(self.device_id, "online"), qos=1, retain=True)
        if self.config.receipts:
            # Subscribed on every connection (a broker that lost the session has no subscription).
            # Receipts sent while no session held them are gone: what they named is re-sent
            # after confirm_timeout_s, and the ingest confirms it again.
            client.subscribe(self.topics.receipts, qos=1)
        self._next_claim = 0.0
        self._ready.clear()  # claim afresh: priorities may have changed while we were away

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if self._client is not None and not self._stop.is_set():
            self._lost(f"disconnected: {reason}", closed_before_connack=not self._connack)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any) -> None:
        bad = [str(c) for c in codes if c.is_failure]
        if bad:
            self._set_error(f"receipts subscription on {self.topics.receipts} refused: {', '.join(bad)}")
            log.error(
                "uplink: the broker refused the receipts subscription (%s): results stay unconfirmed and"
                " are re-sent every %g s; check the broker ACL, or set [uplink] receipts = false",
                ", ".join(bad),
                self.config.confirm_timeout_s,
            )
            return
        self._subscribed = True

    def _on_receipt(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != self.topics.receipts:
            self._ack_receipts([(msg.mid, msg.qos)])
            return
        try:
            ids = parse_receipt(bytes(msg.payload))
        except ValueError as exc:
            self._ack_receipts([(msg.mid, msg.qos)])
            self._bad_receipts += 1
            log.warning("uplink: ignoring a receipt on %s: %s", msg.topic, exc)
            return
        if not self._receipted:
            self._receipted_since = time.monotonic()
        self._receipted.extend(ids)
        self._receipt_mids.append((msg.mid, msg.qos))

    def _flush_receipts(self, now: float, *, commit_now: bool = False) -> None:
        """Commit the confirmations received, in batches (one SQLite commit for many receipts)."""
        if not self._receipted:
            return
        young = len(self._receipted) < ACK_BATCH and now - self._receipted_since < ACK_MAX_DELAY_S
        if young and not commit_now:
            return
        # PUBACKs come before the receipts that follow them on the same connection: commit them
        # first, so a result goes queued -> sent -> confirmed and is counted as sent.
        self._flush_acks(now, commit_now=True)
        ids, self._receipted = self._receipted, []
        mids, self._receipt_mids = self._receipt_mids, []
        try:
            changed = self._ob("confirming receipts", lambda: self._outbox.mark_confirmed(ids))
        except _OutboxFailed:  # kept (and not acknowledged): committed on the next try
            self._receipted[:0], self._receipt_mids[:0] = ids, mids
            raise
        with self._lock:
            self._confirmed_session += changed
        self._next_stats = 0.0
        self._ack_receipts(mids)  # only now: a runtime killed before the commit gets them again

    def _ack_receipts(self, mids: list[tuple[int, int]]) -> None:
        client = self._client
        if client is None:
            return  # the connection is gone: the broker's session delivers them again
        for mid, qos in mids:
            if qos > 0:
                client.ack(mid, qos)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        rid = self._inflight.pop(mid, None)
        if rid is None:
            return  # the status message
        if reason.is_failure:
            self._refused.add(rid)
            self._set_error(f"broker refused result {rid} on {self.topics.results}: {reason}")
            log.warning("uplink: broker refused %s: %s (%#04x)", rid, reason, reason.value)
            return
        self._acked.append((time.monotonic(), rid))

    def _fill_window(self, now: float) -> None:
        client = self._client
        if client is None:
            return
        free = self.config.inflight_window - len(self._inflight)
        if free <= 0:
            return
        if not self._ready and (now >= self._next_claim or not self._inflight):
            if now < self._next_claim:
                return
            # A batch at a time: the outbox orders by priority and keeps a share for live results;
            # a batch drains in a fraction of a second, so a new urgent result waits no longer.
            exclude = {rid for _, rid in self._acked}
            exclude.update(self._pending_commit, self._inflight.values(), self._refused)
            claimed = self._ob(
                "claiming results",
                lambda: self._outbox.claim(
                    max(CLAIM_BATCH, self.config.inflight_window),
                    exclude=exclude,
                    live_window_s=self.config.live_window_s,
                    live_share=self.config.live_share,
                    resend_after_s=self.config.confirm_timeout_s if self.config.receipts else None,
                ),
            )
            self._ready.extend(claimed)
            if not self._ready:
                self._next_claim = now + IDLE_CLAIM_EVERY_S
                return
        while free > 0 and self._ready:
            item = self._ready.popleft()
            info = client.publish(self.topics.for_kind(item.kind), item.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self._set_error(f"publish failed: {mqtt.error_string(info.rc)}")
                self._ready.appendleft(item)
                return
            self._inflight[info.mid] = item.result_id
            free -= 1

    def _flush_acks(self, now: float, *, commit_now: bool = False) -> None:
        """Commit the PUBACKs that have settled (the connection outlived them by ``ack_settle_s``).

        Only without receipts does settling matter: a broker acknowledges before it has saved
        the message, and if it dies within that gap the message is gone. Holding the commit
        until the connection has outlived the PUBACK narrows that loss to a heuristic re-send.
        With receipts the PUBACK is committed at once: a lost message has no receipt, and is
        sent again after ``confirm_timeout_s``.
        """
        settle = 0.0 if self.config.receipts else self.config.ack_settle_s
        while self._acked and now - self._acked[0][0] >= settle:
            if not self._pending_commit:
                self._pending_since = now
            self._pending_commit.append(self._acked.popleft()[1])
        if not self._pending_commit:
            return
        young = len(self._pending_commit) < ACK_BATCH and now - self._pending_since < ACK_MAX_DELAY_S
        if young and not commit_now:
            return
        ids, self._pending_commit = self._pending_commit, []
        try:  # already sent (by another process) does not count
            changed = self._ob("marking results sent", lambda: self._outbox.mark_sent(ids))
        except _OutboxFailed:  # kept: committed on the next try (or, if never, sent again)
            self._pending_commit[:0] = ids
            raise
        with self._lock:
            self._sent_session += changed
        self._next_stats = 0.0

    def _refresh_stats(self, now: float) -> None:
        if now < self._next_stats:
            return
        stats = self._ob("reading the outbox figures", self._outbox.stats)
        with self._lock:
            self._stats = stats
            self._snapshot_idle = not (
                self._inflight or self._acked or self._pending_commit or self._ready or self._receipted
            )
        self._next_stats = now + STATS_EVERY_S

    def _lost(self, why: str, *, reason_code: int | None = None, closed_before_connack: bool = False) -> None:
        """Drop this connection: in-flight results become claimable; reconnect after a backoff."""
        client, self._client = self._client, None
        was_connected = self._connected
        if was_connected and time.monotonic() - self._connected_at >= STABLE_AFTER_S:
            self._backoff.reset()
        with self._lock:
            self._connected = False
            if was_connected:
                self._reconnects += 1
        self._inflight.clear()
        self._ready.clear()
        self._subscribed = False
        try:
            self._flush_receipts(time.monotonic(), commit_now=True)
            self._flush_acks(time.monotonic(), commit_now=True)  # settled: the broker had time to save them
        except _OutboxFailed as exc:
            self._outbox_failed(str(exc))
        if self._acked:  # not settled: the broker may have lost them with its memory; send again
            log.info("uplink: %d PUBACK(s) too recent to trust after the loss; re-sending", len(self._acked))
            self._acked.clear()
        if client is not None:
            try:
                client.disconnect()
            except Exception:  # the socket may already be gone; nothing to save here
                log.debug("uplink: disconnect after loss failed", exc_info=True)
        paho, self._paho = self._paho, None
        socket_error = paho.socket_error if paho is not None else None
        if socket_error is not None and self._tls is not None and not self._connack:
            why = self._tls_failed(socket_error)  # an alert, or a close racing it: never the MQTT version
        if should_fall_back(
            self.protocol,
            reason_code=reason_code,
            closed_before_connack=closed_before_connack and not self._hang_ups_not_version,
            socket_error=socket_error is not None,
        ):
            log.warning("uplink: the broker does not take MQTT v5 (%s); falling back to 3.1.1", why)
            self.protocol = "3.1.1"
            self._fallback_tentative = reason_code is None  # a bare hang-up, not a refusal code
            self._next_attempt = time.monotonic()
            self._set_error(why)
            return
        if self._fallback_tentative and not self._connack:
            log.warning("uplink: MQTT 3.1.1 fails as v5 did (%s): not a version problem; back to v5", why)
            self.protocol, self._fallback_tentative, self._hang_ups_not_version = "5", False, True
        self._fail(why)

    def _fail(self, why: str) -> None:
        delay = self._backoff.next_delay()
        self._next_attempt = time.monotonic() + delay
        self._set_error(why)
        log.warning("uplink: %s; retrying in %.1f s", why, delay)

    def _set_error(self, why: str) -> None:
        with self._lock:
            self._last_error = why

    def _shutdown(self) -> None:
        """Say "offline", let the last PUBACKs settle on a live connection, commit, disconnect."""
        client, self._client = self._client, None
        if client is not None and self._connected:
            try:
                info = client.publish(
                    self.topics.status, status_payload(self.device_id, "offline"), qos=1, retain=True
                )
                settle = 0.0 if self.config.receipts else self.config.ack_settle_s
                deadline = time.monotonic() + 1.0 + min(settle, 2.0)  # bounded stop
                while (
                    self._inflight or self._acked or not info.is_published()
                ) and time.monotonic() < deadline:
                    if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                        break
                    self._flush_acks(time.monotonic())
                    self._flush_receipts(time.monotonic())
                client.disconnect()
                client.loop(timeout=0.1)
            except _OutboxFailed as exc:
                self._outbox_failed(str(exc))
            except Exception:
                log.debug("uplink: clean disconnect failed", exc_info=True)
        self._inflight.clear()
        self._ready.clear()
        self._acked.clear()  # never settled: they go again next time
        try:
            self._flush_acks(time.monotonic(), commit_now=True)
            self._flush_receipts(time.monotonic(), commit_now=True)
            self._refresh_stats(float("inf"))
        except _OutboxFailed as exc:
            log.error(
                "uplink: stopping with %d PUBACK(s) and %d receipt id(s) not committed (%s): those results"
                " stay queued or unconfirmed and are sent again next time",
                len(self._pending_commit), len(self._receipted), exc,
            )  # fmt: skip
            self._outbox_failed(str(exc))
        with self._lock:
            self._connected = False


def start_uplink(config: Config, outbox: OutboxLike | None) -> Uplink | None:
    """The run's uplink when ``[uplink] enabled`` (started), else None. Needs the run's outbox."""
    if not config.uplink.enabled:
        return None
    if outbox is None:
        raise ConfigError("[uplink] enabled needs the outbox: set [outbox] enabled = true")
    site = config.uplink.site or config.device.site or "default"
    uplink = Uplink(outbox, config.uplink, device_id=config.device.id, site=site)
    uplink.start()
    return uplink
