"""The uplink against a scripted MQTT peer on loopback (no TLS): exact protocol behaviour, no broker.

As paho-mqtt's own tests do: the peer answers CONNECT and PUBLISH with the bytes a test wants,
e.g. a 3.1.1-only broker refusing MQTT v5, or a PUBACK with reason 0x87 (not authorised).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.config import UplinkConfig
from edge.sync.outbox import Outbox
from edge.sync.uplink import Uplink
from tests.support.polling import wait_for
from tests.support.sync_helpers import fill


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _read_packet(conn: socket.socket) -> tuple[int, bytes]:
    first = _read_exact(conn, 1)[0]
    length, shift = 0, 0
    while True:
        b = _read_exact(conn, 1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return first, _read_exact(conn, length)


class ScriptedPeer:
    """One connection at a time; ``on_publish(n)`` gives the n-th PUBACK's reason (None: withhold it)."""

    def __init__(
        self,
        *,
        refuse_v5: bool = False,
        hang_up: bool = False,
        on_publish: Callable[[int], int | None] = lambda n: 0,
        close_after: int | None = None,
        receipt: Callable[[str], bool] | None = None,
    ) -> None:
        self.refuse_v5 = refuse_v5
        self.hang_up = hang_up  # close every connection on its CONNECT, whatever the version
        self.receipt = receipt  # plays the ingest: send a receipt for this result id now?
        self.subscribed: list[str] = []
        self.on_publish = on_publish
        self.close_after = close_after  # close the first connection after this many PUBLISHes
        self.levels: list[int] = []  # protocol level of every CONNECT (5 = v5, 4 = 3.1.1)
        self.published: list[tuple[str, bytes]] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(ConnectionError, OSError):
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        _, body = _read_packet(conn)
        name_len = int.from_bytes(body[:2], "big")
        level = body[2 + name_len]
        self.levels.append(level)
        v5 = level == 5
        if self.hang_up:
            return
        if v5 and self.refuse_v5:
            conn.sendall(b"\x20\x02\x00\x01")  # a 3.1.1 broker: "unacceptable protocol version"
            return
        conn.sendall(b"\x20\x03\x00\x00\x00" if v5 else b"\x20\x02\x00\x00")
        count = 0
        while not self._stop:
            first, body = _read_packet(conn)
            kind = first >> 4
            if kind == 3:  # PUBLISH, QoS 1 here
                tlen = int.from_bytes(body[:2], "big")
                topic = body[2 : 2 + tlen].decode()
                pid = body[2 + tlen : 4 + tlen]
                rest = body[4 + tlen :]
                if v5:  # skip the properties
                    plen, i = rest[0], 1
                    rest = rest[i + plen :]
                self.published.append((topic, rest))
                reason = self.on_publish(len(self.published))
                if reason is not None:
                    conn.sendall(b"\x40\x03" + pid + bytes([reason]) if v5 else b"\x40\x02" + pid)
                if reason == 0 and self.receipt is not None and topic.endswith("/results"):
                    rid = json.loads(rest)["result_id"]
                    if self.receipt(rid):
                        receipts = topic.rsplit("/", 1)[0] + "/receipts"
                        conn.sendall(_publish_qos0(receipts, json.dumps({"ids": [rid]}).encode(), v5))
                count += 1
                if self.close_after is not None and count >= self.close_after:
                    self.close_after = None
                    return
            elif kind == 8:  # SUBSCRIBE: granted at QoS 0
                pid = body[:2]
                rest = body[2 + 1 + body[2] :] if v5 else body[2:]  # skip the v5 properties (short here)
                tlen = int.from_bytes(rest[:2], "big")
                self.subscribed.append(rest[2 : 2 + tlen].decode())
                conn.sendall(b"\x90\x04" + pid + b"\x00\x00" if v5 else b"\x90\x03" + pid + b"\x00")
            elif kind == 12:  # PINGREQ
                conn.sendall(b"\xd0\x00")
            elif kind == 14:  # DISCONNECT
                return

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.server.close()


def _publish_qos0(topic: str, payload: bytes, v5: bool) -> bytes:
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (b"\x00" if v5 else b"") + payload
    n, length = len(body), b""
    while True:
        byte, n = n % 128, n // 128
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    return b"\x30" + length + body


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def _config(port: int, **kw: object) -> UplinkConfig:
    values: dict[str, object] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "backoff_min_s": 0.01,
        "backoff_max_s": 0.05,
        "receipts": False,  # the scripted peer plays a broker without an ingest behind it
        "ack_settle_s": 0.0,
        **kw,
    }
    return UplinkConfig.model_validate(values)


def test_falls_back_to_311_when_the_broker_refuses_v5(outbox: Outbox) -> None:
    peer = ScriptedPeer(refuse_v5=True)
    ids = fill(outbox, 3, priority=0)
    uplink = Uplink(outbox, _config(peer.port), device_id="dev-1", site="s")
    try:
        report = uplink.drain_once(timeout_s=10)
        assert report.drained and report.sent == 3, report
        assert uplink.protocol == "3.1.1"
        assert uplink.state().protocol == "3.1.1"
    finally:
        uplink.stop()
        peer.close()
    assert peer.levels[0] == 5 and set(peer.levels[1:]) == {4}
    results = [p for t, p in peer.published if t == "scanners/s/dev-1/results"]
    assert sorted(_ids(results)) == sorted(ids)


def test_a_hang_up_on_both_versions_is_not_taken_for_a_311_broker(outbox: Outbox) -> None:
    # A broker that closes every connection unanswered (overloaded, or refusing this client) hangs
    # up on 3.1.1 as on v5: the tentative fallback is taken back, v5 stays the protocol.
    peer = ScriptedPeer(hang_up=True)
    uplink = Uplink(outbox, _config(peer.port), device_id="dev-1", site="s")
    uplink.start()
    try:
        wait_for(lambda: len(peer.levels) >= 5, 10, "five connection attempts", poll_s=0.01)
    finally:
        uplink.stop()
        peer.close()
    assert peer.levels[:3] == [5, 4, 5]  # v5, tentative 3.1.1, back to v5
    assert set(peer.levels[3:]) == {5}
    assert uplink.protocol == "5"


def _ids(payloads: list[bytes]) -> list[str]:
    return [json.loads(p)["result_id"] for p in payloads]


def test_status_is_retained_online_then_offline(outbox: Outbox) -> None:
    peer = ScriptedPeer()
    uplink = Uplink(outbox, _config(peer.port), device_id="dev-1", site="s")
    uplink.start()
    wait_for(lambda: uplink.state().connected, 10, "the connection", poll_s=0.01)
    uplink.stop()
    peer.close()
    status = [p for t, p in peer.published if t == "scanners/s/dev-1/status"]
    assert [b'"status":"online"' in status[0], b'"status":"offline"' in status[-1]] == [True, True]


def test_not_authorised_puback_leaves_results_queued(outbox: Outbox) -> None:
    # The first PUBLISH is the status message (accepted); every result is refused with 0x87.
    peer = ScriptedPeer(on_publish=lambda n: 0 if n == 1 else 0x87)
    fill(outbox, 4, priority=0)
    uplink = Uplink(outbox, _config(peer.port), device_id="dev-1", site="s")
    try:
        report = uplink.drain_once(timeout_s=10)
    finally:
        uplink.stop()
        peer.close()
    assert report.drained and report.sent == 0 and report.refused == 4 and report.remaining == 4
    assert outbox.stats().queued == 4
    assert report.last_error is not None and "Not authorized" in report.last_error
    assert uplink.hud_text() == "sync: offline, 4 queued, oldest 0s, 4 refused"


def test_nothing_is_marked_sent_without_its_puback(outbox: Outbox) -> None:
    peer = ScriptedPeer(on_publish=lambda n: 0 if n == 1 else None)  # status acked, results never
    fill(outbox, 5, priority=0)
    uplink = Uplink(outbox, _config(peer.port, inflight_window=3), device_id="dev-1", site="s")
    uplink.start()
    try:
        wait_for(lambda: len(peer.published) >= 4, 10, "three results in flight", poll_s=0.01)
        time.sleep(0.3)  # give a wrong implementation the chance to publish or mark more
        state = uplink.state()
        assert state.in_flight == 3  # the window bounds what is outstanding
        assert len(peer.published) == 4
        assert outbox.stats().sent == 0 and outbox.stats().queued == 5
    finally:
        uplink.stop()
        peer.close()


def test_a_lost_connection_resends_what_was_in_flight_and_unsettled(outbox: Outbox) -> None:
    # Connection 1 acks everything, then drops before the PUBACKs settle: nothing may be marked
    # sent, since a broker dying there may not have saved them. Connection 2 gets them all again.
    peer = ScriptedPeer(close_after=4)  # status + 3 results, then the line drops
    ids = fill(outbox, 3, priority=0)
    uplink = Uplink(outbox, _config(peer.port, ack_settle_s=30.0), device_id="dev-1", site="s")
    uplink.start()
    try:
        wait_for(lambda: len(peer.published) >= 8, 10, "the re-send on the second connection", poll_s=0.01)
        assert outbox.stats().sent == 0  # acked twice, settled never
        assert uplink.state().reconnects == 1
    finally:
        uplink.stop()
        peer.close()
    resent = [p for t, p in peer.published if t.endswith("/results")]
    assert len(resent) == 6 and sorted(_ids(resent)) == sorted(ids * 2)


def test_a_result_is_confirmed_only_by_its_receipt_and_resent_until_then(outbox: Outbox) -> None:
    # The broker acks every result, but the ingest (played by the peer) confirms each one only the
    # second time it arrives: the first PUBACK alone must not end the drain; after
    # confirm_timeout_s each unconfirmed result is sent again, and its receipt confirms it.
    seen: dict[str, int] = {}

    def receipt(rid: str) -> bool:
        seen[rid] = seen.get(rid, 0) + 1
        return seen[rid] >= 2

    peer = ScriptedPeer(receipt=receipt)
    ids = fill(outbox, 3, priority=0)
    config = _config(peer.port, receipts=True, confirm_timeout_s=0.3)
    uplink = Uplink(outbox, config, device_id="dev-1", site="s")
    try:
        report = uplink.drain_once(timeout_s=20)
        assert report.drained, report
        assert report.sent == 3 and report.confirmed == 3 and report.awaiting_receipt == 0
        assert uplink.hud_text() == "sync: ok, 0 queued"
    finally:
        uplink.stop()
        peer.close()
    assert peer.subscribed == ["scanners/s/dev-1/receipts"]
    results = [p for t, p in peer.published if t.endswith("/results")]
    assert sorted(_ids(results)) == sorted(ids * 2)  # each sent twice: once unconfirmed, once confirmed
    s = outbox.stats()
    assert (s.queued, s.sent, s.confirmed, s.awaiting_receipt) == (0, 3, 3, 0)


def test_without_a_receipt_the_drain_does_not_finish(outbox: Outbox) -> None:
    peer = ScriptedPeer(receipt=lambda rid: False)  # acked by the broker, never confirmed by an ingest
    fill(outbox, 2, priority=0)
    uplink = Uplink(
        outbox, _config(peer.port, receipts=True, confirm_timeout_s=60), device_id="dev-1", site="s"
    )
    try:
        report = uplink.drain_once(timeout_s=1.5)
    finally:
        uplink.stop()
        peer.close()
    assert not report.drained and report.sent == 2 and report.confirmed == 0 and report.awaiting_receipt == 2
    assert uplink.hud_text().startswith("sync: ") and "2 awaiting receipt" in uplink.hud_text()
    assert len([t for t, _ in peer.published if t.endswith("/results")]) == 2  # not re-sent before 60 s
