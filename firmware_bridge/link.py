"""``ProbeLink``: the host end of a probe link over any transport URL.

Two threads: the reader (bytes -> packets -> messages -> callbacks) and the supervisor (heartbeats,
link-loss detection, reconnection with backoff, a watch on the reader). Commands run on the caller's
thread, wait for the reader to resolve their answer and are resent when it is lost (``commands``).
On reconnect a fresh deframer, sequence tracker and frame assembler start; their counts are carried
over so ``stats()`` stays cumulative.

Nothing fails silently. The transport owns its port's lifetime (closing it from any thread is safe
during a read). The reader survives any exception: it drops the connection, counts it
(``reader_errors``) and logs it, and the supervisor reconnects. A reader thread that dies anyway is
restarted (``reader_restarts``); past a budget of restarts, or with the supervisor gone, ``failed``
says why, the state is "failed", and the owner (the probe source) stops instead of waiting.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from firmware_bridge import framing
from firmware_bridge import messages as m
from firmware_bridge.commands import (
    COMMAND_ATTEMPTS,
    CommandRejected,
    Commands,
    CommandTimeout,
    Pending,
    backoff_delay,
)
from firmware_bridge.framing import FLAG_ACK_REQUESTED, DeframeError, Deframer, ProtocolError, SequenceTracker
from firmware_bridge.link_stats import nest, retire, rx_counts
from firmware_bridge.messages import Ack, Capabilities, FrameChunk, Heartbeat, Message, Nack, Status
from firmware_bridge.reassembly import AssembledFrame, FrameAssembler
from firmware_bridge.transport import LinkDownError, LinkError, Transport, open_transport

__all__ = ["CommandRejected", "CommandTimeout", "ProbeLink"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0  # PROTOCOL.md §4: heartbeat after 1 s without other traffic
LINK_LOSS_S = 3.0  # ... and 3 s of silence means the link is lost
READ_CHUNK = 65536
POLL_S = 0.05  # reader/supervisor wake-up period: bounds stop() latency and timer resolution
READER_RESTARTS = (5, 60.0)  # more reader deaths than this within the window: the link has failed

FrameCallback = Callable[[AssembledFrame], Any]
StatusCallback = Callable[[Status], Any]
EventCallback = Callable[[str, str], Any]


class ProbeLink(Commands):
    def __init__(
        self,
        url: str,
        *,
        on_frame: FrameCallback | None = None,
        on_status: StatusCallback | None = None,
        on_event: EventCallback | None = None,
        protocol_versions: tuple[int, int] = (1, 1),
        command_timeout: float = 1.0,
        command_attempts: int = COMMAND_ATTEMPTS,
        heartbeat_s: float = HEARTBEAT_S,
        link_loss_s: float = LINK_LOSS_S,
        backoff: tuple[float, float] = (0.1, 1.0),
        reader_restarts: tuple[int, float] = READER_RESTARTS,
    ) -> None:
        if command_attempts < 1:
            raise ValueError(f"command_attempts must be >= 1, got {command_attempts}")
        self.url = url
        self._on_frame, self._on_status, self._on_event = on_frame, on_status, on_event
        self.protocol_versions = protocol_versions
        self.command_timeout, self.command_attempts = command_timeout, command_attempts
        self.heartbeat_s, self.link_loss_s, self.backoff = heartbeat_s, link_loss_s, backoff
        self.reader_restarts = reader_restarts
        self.capabilities: Capabilities | None = None
        self.version: int | None = None
        self.state = "disconnected"
        self.failure: str | None = None  # set when the link gave up: it will not recover by itself
        self._lock = threading.RLock()  # state, counters, pending commands
        self._tx_lock = threading.Lock()  # seq allocation + write stay in one order on the wire
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None
        self._deaths: dict[str, str] = {}  # thread name -> what killed it last
        self._restarts: list[float] = []  # monotonic times of reader restarts, inside the window
        self._transport: Transport | None = None
        self._tx_seq = 0
        self._pending: dict[int, Pending] = {}
        self._hello: tuple[int, Pending] | None = None
        self._negotiated = False  # hello() succeeded once: re-run it after a reconnect
        self._streaming = False  # streaming was acknowledged on: restore it after a reconnect
        self._last_rx = self._last_tx = time.monotonic()
        self._new_rx_state()
        self._carried: Counter[str] = Counter()  # counts of retired deframers/trackers/assemblers
        self._c: Counter[str] = Counter()  # bytes/packets out, heartbeats, reconnects, decode errors...

    # ----------------------------------------------------------------------------- lifetime

    def start(self) -> None:
        """Open the transport (``LinkDownError`` if absent) and start the reader and supervisor."""
        if self._supervisor is not None:
            raise RuntimeError("ProbeLink already started")
        self._stop.clear()
        self.failure = None
        self._install(open_transport(self.url))
        self._set_state("connected", self.url)
        self._reader = self._spawn(self._read_loop, "probe-reader")
        self._supervisor = self._spawn(self._supervise, "probe-supervisor")

    def stop(self) -> None:
        """Stop both threads (within ~2 poll periods), close the transport, fail waiting commands."""
        self._stop.set()
        with self._lock:
            self._fail_pending(LinkDownError("link stopped"))  # wakes a hello() inside a reconnect
        for t in (self._supervisor, self._reader):  # the supervisor first: it may restart the reader
            if t is not None:
                t.join(timeout=1.0)
        self._reader = self._supervisor = None
        self._detach(None, LinkDownError("link stopped"))
        if self.state != "disconnected" and self.failure is None:
            self._set_state("disconnected", "stopped")

    def __enter__(self) -> ProbeLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def failed(self) -> str | None:
        """Why the link cannot recover by itself (reader restart budget spent, supervisor dead), else None."""
        if self.failure is not None:
            return self.failure
        sup = self._supervisor
        if sup is not None and not sup.is_alive() and not self._stop.is_set():
            why = self._deaths.get("probe-supervisor", "ended")
            return f"the probe link's supervisor thread is gone ({why}): no reconnection possible"
        return None

    def _spawn(self, body: Callable[[], None], name: str) -> threading.Thread:
        def run() -> None:
            try:
                body()
            except BaseException as exc:  # recorded and logged: the supervisor acts on it
                self._deaths[name] = f"{type(exc).__name__}: {exc}"
                log.critical("probe link: thread %s died", name, exc_info=True)

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        return t

    def _fail(self, why: str) -> None:
        log.error("probe link on %s failed: %s", self.url, why)
        self.failure = why
        self._detach(None, LinkDownError(f"link failed: {why}"))
        self._set_state("failed", why)

    def _send(
        self, msg: Message, *, flags: int = 0, pending: Pending | None = None, hello: bool = False
    ) -> None:
        with self._tx_lock:
            transport = self._transport
            if transport is None:
                raise LinkDownError(f"link is {self.state}")
            seq = self._tx_seq
            self._tx_seq = (seq + 1) & 0xFFFF
            if pending is not None:  # registered before writing: the answer may beat us back
                with self._lock:
                    if hello:
                        self._hello = (seq, pending)
                    else:
                        self._pending[seq] = pending
            data = m.encode(msg, seq, flags)
            try:
                transport.write(data)
            except LinkDownError as exc:
                self._link_lost(transport, str(exc))
                raise
            self._last_tx = time.monotonic()
            with self._lock:
                self._c["bytes_out"] += len(data)
                self._c["packets_out"] += 1

    # ----------------------------------------------------------------------------- reader

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            transport = self._transport
            if transport is None:
                self._stop.wait(POLL_S)
                continue
            try:
                self._read_once(transport)
            except LinkDownError as exc:
                self._link_lost(transport, str(exc))
            except Exception as exc:  # a bug, or a transport breaking its contract: drop this connection
                self._count(f"reader_errors.{type(exc).__name__}")
                log.error("probe reader: unexpected error on %s, reconnecting", self.url, exc_info=True)
                self._link_lost(transport, f"read failed: {type(exc).__name__}: {exc}")

    def _read_once(self, transport: Transport) -> None:
        data = transport.read(READ_CHUNK, POLL_S)
        now = time.monotonic()
        with self._lock:
            self._assembler.expire(now)
            if not data or self._transport is not transport:
                return  # nothing, or bytes from a connection already replaced: not this one's
            events = self._deframer.feed(data)
        self._last_rx = now
        if any(isinstance(e, DeframeError) for e in events):
            self._nudge_pending()  # a damaged packet may be the answer a command waits for
        for event in events:
            try:
                self._handle(event, now)
            except Exception as exc:  # a bug or a bad callback must not kill the reader
                self._count(f"handler_error.{type(exc).__name__}")

    def _handle(self, packet: framing.Packet | DeframeError, now: float) -> None:
        if isinstance(packet, DeframeError):
            return  # counted by the deframer
        with self._lock:
            self._rx_seq.observe(packet.seq)
            try:
                msg = m.decode(packet)
            except ProtocolError as exc:
                self._c[f"decode_errors.{exc.kind}"] += 1
                msg = None
            else:
                self._c[f"rx.{type(msg).__name__}"] += 1
        if msg is None:
            self._nudge_pending()
            return
        if packet.flags & FLAG_ACK_REQUESTED:
            try:
                self._send(Ack(packet.seq))
            except LinkDownError:
                return
        if isinstance(msg, FrameChunk):
            with self._lock:
                frame = self._assembler.push(msg, now)
            if frame is not None and self._on_frame is not None:
                self._on_frame(frame)
        elif isinstance(msg, Status):
            if self._on_status is not None:
                self._on_status(msg)
        elif isinstance(msg, (Ack, Nack)):
            with self._lock:
                pending = self._pending.pop(msg.seq, None)
                if pending is None and isinstance(msg, Nack) and self._hello and self._hello[0] == msg.seq:
                    pending, self._hello = self._hello[1], None
                if pending is None:
                    self._c["unmatched_ack"] += 1
            if pending is not None:
                pending.resolve(msg)
        elif isinstance(msg, Capabilities):
            with self._lock:
                hello, self._hello = self._hello, None
            if hello is not None:
                hello[1].resolve(msg)
            else:
                self._count("unsolicited_capabilities")
        elif not isinstance(msg, Heartbeat):
            self._count("unexpected_message")  # host-bound messages only; the probe sent a command

    # ----------------------------------------------------------------------------- supervisor

    def _supervise(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._supervise_once()
            except Exception as exc:  # a bug here must not end reconnection: count, log, go on
                self._count(f"supervisor_errors.{type(exc).__name__}")
                log.error("probe link supervisor: unexpected error on %s", self.url, exc_info=True)
            if self.failure is not None:
                return

    def _supervise_once(self) -> None:
        self._watch_reader()
        if self.failure is not None:
            return
        transport = self._transport
        if transport is None:
            self._reconnect()
            return
        now = time.monotonic()
        if now - self._last_rx > self.link_loss_s:
            self._link_lost(transport, f"no data from the probe for {self.link_loss_s} s")
        elif now - self._last_tx >= self.heartbeat_s:
            with contextlib.suppress(LinkDownError):  # _send already reported the loss
                self._send(Heartbeat())
                self._count("heartbeats_out")

    def _watch_reader(self) -> None:
        """Restart a dead reader thread; past the restart budget, fail the link."""
        t = self._reader
        if t is None or t.is_alive() or self._stop.is_set() or self.failure is not None:
            return
        why = self._deaths.get("probe-reader", "ended")
        budget, window = self.reader_restarts
        now = time.monotonic()
        self._restarts = [x for x in self._restarts if now - x < window]
        if len(self._restarts) >= budget:
            self._fail(f"the probe reader thread died {budget + 1} times within {window:g} s (last: {why})")
            return
        self._restarts.append(now)
        self._count("reader_restarts")
        log.error("probe link: the reader thread died (%s); restarting it", why)
        self._reader = self._spawn(self._read_loop, "probe-reader")

    def _reconnect(self) -> None:
        self._set_state("reconnecting", self.url)
        attempt = 0
        while not self._stop.is_set():
            self._watch_reader()  # commands below need a live reader to be answered
            if self.failure is not None:
                return
            attempt += 1
            self._count("reconnect_attempts")
            try:
                self._install(open_transport(self.url))
                if self._negotiated:
                    self.hello()
                if self._streaming:
                    self.start_streaming()
            except (LinkError, ProtocolError) as exc:
                self._detach(None, None)
                self._count(f"reconnect_failed.{type(exc).__name__}")
                self._stop.wait(backoff_delay(attempt, self.backoff))
                continue
            self._count("reconnects")
            self._set_state("connected", f"after {attempt} attempt(s)")
            return

    # ----------------------------------------------------------------------------- connections

    def _install(self, transport: Transport) -> None:
        """Make ``transport`` current with fresh per-connection receive state."""
        with self._lock:
            self._retire_rx_state()
            self._new_rx_state()
            self._transport = transport
            self._last_rx = self._last_tx = time.monotonic()
        with self._tx_lock:
            try:
                transport.write(b"\x00")  # PROTOCOL.md §3: flush a half-received packet at the probe
            except LinkDownError as exc:
                self._link_lost(transport, str(exc))
                raise

    def _detach(self, transport: Transport | None, exc: Exception | None) -> bool:
        """Drop ``transport`` (None: whichever is current) and close it; False if it was not current."""
        with self._lock:
            current = self._transport
            if current is None or (transport is not None and current is not transport):
                return False
            self._transport = None
            if exc is not None:
                self._fail_pending(exc)
        current.close()  # safe while the reader is inside read(): the transport serialises it
        return True

    def _link_lost(self, transport: Transport, detail: str) -> None:
        # Reader, writer and supervisor can all notice the same failure: the first one handles it.
        if self._detach(transport, LinkDownError(f"link lost: {detail}")) and self.state == "connected":
            self._set_state("disconnected", detail)

    def _set_state(self, state: str, detail: str) -> None:
        self.state = state
        if self._on_event is not None:
            try:
                self._on_event(state, detail)
            except Exception:  # a bad callback must not stop reconnection
                self._count("callback_errors")

    def _count(self, key: str) -> None:
        with self._lock:
            self._c[key] += 1

    def _new_rx_state(self) -> None:
        self._deframer, self._rx_seq, self._assembler = Deframer(), SequenceTracker(), FrameAssembler()

    def _retire_rx_state(self) -> None:
        self._carried.update(retire(self._deframer, self._rx_seq, self._assembler))

    def _flat(self) -> Counter[str]:
        with self._lock:
            return self._carried + rx_counts(self._deframer, self._rx_seq, self._assembler) + self._c

    def stats(self) -> dict[str, Any]:
        """Cumulative counters over all connections; nested dicts for counts by kind/reason."""
        with self._lock:
            flat, state = self._flat(), self.state
        return nest(flat, state)
