"""``ProbeLink``: the host end of a probe link over any transport URL.

Two threads: the reader (bytes -> packets -> messages -> callbacks, never dies on bad input) and the
supervisor (heartbeats, link-loss detection, reconnection with backoff). Commands run on the caller's
thread and wait for the reader to resolve their ACK/NACK. On reconnect a fresh deframer, sequence
tracker and frame assembler start (the probe may restart its numbering); their counts are carried
over so ``stats()`` stays cumulative, and frames already delivered are never touched.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge import framing
from firmware_bridge import messages as m
from firmware_bridge.framing import FLAG_ACK_REQUESTED, DeframeError, Deframer, ProtocolError, SequenceTracker
from firmware_bridge.messages import Ack, Capabilities, FrameChunk, Heartbeat, Hello, Message, Nack, Status
from firmware_bridge.reassembly import AssembledFrame, FrameAssembler
from firmware_bridge.transport import LinkDownError, LinkError, Transport, open_transport

HEARTBEAT_S = 1.0  # PROTOCOL.md §4: heartbeat after 1 s without other traffic
LINK_LOSS_S = 3.0  # ... and 3 s of silence means the link is lost
READ_CHUNK = 65536
POLL_S = 0.05  # reader/supervisor wake-up period: bounds stop() latency and timer resolution


class CommandTimeout(LinkError):
    """A command got no ACK/NACK (or HELLO no CAPABILITIES) in time."""


class CommandRejected(LinkError):
    def __init__(self, command: str, code: int) -> None:
        name = m.NackCode(code).name if code in m.NackCode._value2member_map_ else str(code)
        super().__init__(f"probe rejected {command}: NACK {name}")
        self.command = command
        self.code = code


@dataclass
class _Pending:
    name: str
    event: threading.Event = field(default_factory=threading.Event)
    result: Message | Exception | None = None

    def resolve(self, result: Message | Exception) -> None:
        self.result = result
        self.event.set()


FrameCallback = Callable[[AssembledFrame], Any]
StatusCallback = Callable[[Status], Any]
EventCallback = Callable[[str, str], Any]


class ProbeLink:
    def __init__(
        self,
        url: str,
        *,
        on_frame: FrameCallback | None = None,
        on_status: StatusCallback | None = None,
        on_event: EventCallback | None = None,
        protocol_versions: tuple[int, int] = (1, 1),
        command_timeout: float = 1.0,
        heartbeat_s: float = HEARTBEAT_S,
        link_loss_s: float = LINK_LOSS_S,
        backoff: tuple[float, float] = (0.1, 1.0),
    ) -> None:
        self.url = url
        self._on_frame, self._on_status, self._on_event = on_frame, on_status, on_event
        self.protocol_versions = protocol_versions
        self.command_timeout = command_timeout
        self.heartbeat_s, self.link_loss_s, self.backoff = heartbeat_s, link_loss_s, backoff
        self.capabilities: Capabilities | None = None
        self.version: int | None = None
        self.state = "disconnected"
        self._lock = threading.RLock()  # state, counters, pending commands
        self._tx_lock = threading.Lock()  # seq allocation + write stay in one order on the wire
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._transport: Transport | None = None
        self._tx_seq = 0
        self._pending: dict[int, _Pending] = {}
        self._hello: tuple[int, _Pending] | None = None
        self._negotiated = False  # hello() succeeded once: re-run it after a reconnect
        self._streaming = False  # streaming was acknowledged on: restore it after a reconnect
        self._last_rx = self._last_tx = time.monotonic()
        self._new_rx_state()
        self._carried: Counter[str] = Counter()  # counts of retired deframers/trackers/assemblers
        self._c: Counter[str] = Counter()  # bytes/packets out, heartbeats, reconnects, decode errors...

    def start(self) -> None:
        """Open the transport (``LinkDownError`` if absent) and start the reader and supervisor."""
        if self._threads:
            raise RuntimeError("ProbeLink already started")
        self._stop.clear()
        self._install(open_transport(self.url))
        self._set_state("connected", self.url)
        for target, name in ((self._read_loop, "probe-reader"), (self._supervise, "probe-supervisor")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop both threads (within ~2 poll periods), close the transport, fail waiting commands."""
        self._stop.set()
        with self._lock:
            self._fail_pending(LinkDownError("link stopped"))  # wakes a hello() inside a reconnect
        for t in self._threads:
            t.join(timeout=1.0)
        self._threads.clear()
        with self._lock:
            transport, self._transport = self._transport, None
            self._fail_pending(LinkDownError("link stopped"))
        if transport is not None:
            transport.close()
        if self.state != "disconnected":
            self._set_state("disconnected", "stopped")

    def __enter__(self) -> ProbeLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hello(self) -> int:
        """HELLO -> CAPABILITIES; returns the negotiated version (``VersionMismatchError`` if none)."""
        vmin, vmax = self.protocol_versions
        pending = _Pending("HELLO")
        self._send(Hello(vmin, vmax), pending=pending, hello=True)
        reply = self._wait(pending)
        if isinstance(reply, Nack):
            if reply.code == m.NackCode.UNSUPPORTED_VERSION:
                raise m.VersionMismatchError(
                    f"no common protocol version: host speaks {vmin}..{vmax}, "
                    "probe refused HELLO with NACK UNSUPPORTED_VERSION",
                    field="version",
                )
            raise CommandRejected("HELLO", reply.code)
        assert isinstance(reply, Capabilities)
        version = m.negotiate_version((vmin, vmax), (reply.version_min, reply.version_max))
        self.capabilities, self.version = reply, version
        self._negotiated = True
        return version

    def start_streaming(self) -> None:
        self._command(m.Start(), "START")
        self._streaming = True

    def stop_streaming(self) -> None:
        self._command(m.Stop(), "STOP")
        self._streaming = False

    def set(self, param: m.Param | int, value: float) -> None:
        p = m.Param(param)
        self._command(m.Set(p, value), f"SET {p.name}={value}")

    def _command(self, msg: Message, name: str) -> None:
        pending = _Pending(name)
        self._send(msg, flags=FLAG_ACK_REQUESTED, pending=pending)
        reply = self._wait(pending)
        if isinstance(reply, Nack):
            raise CommandRejected(name, reply.code)

    def _wait(self, pending: _Pending) -> Message:
        deadline = time.monotonic() + self.command_timeout
        while not pending.event.wait(min(POLL_S, max(0.0, deadline - time.monotonic()))):
            if self._stop.is_set():
                raise LinkDownError("link stopped")
            if time.monotonic() < deadline:
                continue
            with self._lock:
                self._pending = {s: p for s, p in self._pending.items() if p is not pending}
                if self._hello and self._hello[1] is pending:
                    self._hello = None
            raise CommandTimeout(f"{pending.name}: no answer from the probe within {self.command_timeout} s")
        if isinstance(pending.result, Exception):
            raise pending.result
        assert pending.result is not None
        return pending.result

    def _send(
        self, msg: Message, *, flags: int = 0, pending: _Pending | None = None, hello: bool = False
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

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            transport = self._transport
            if transport is None:
                self._stop.wait(POLL_S)
                continue
            try:
                data = transport.read(READ_CHUNK, POLL_S)
            except LinkDownError as exc:
                self._link_lost(transport, str(exc))
                continue
            now = time.monotonic()
            with self._lock:
                self._assembler.expire(now)
                if not data or self._transport is not transport:
                    continue  # nothing, or bytes from a connection already replaced: not this one's
                events = self._deframer.feed(data)
            self._last_rx = now
            for event in events:
                try:
                    self._handle(event, now)
                except Exception as exc:  # a bug or a bad callback must not kill the reader
                    with self._lock:
                        self._c[f"handler_error.{type(exc).__name__}"] += 1

    def _handle(self, packet: framing.Packet | DeframeError, now: float) -> None:
        if isinstance(packet, DeframeError):
            return  # counted by the deframer
        with self._lock:
            self._rx_seq.observe(packet.seq)
            try:
                msg = m.decode(packet)
            except ProtocolError as exc:
                self._c[f"decode_errors.{exc.kind}"] += 1
                return
            self._c[f"rx.{type(msg).__name__}"] += 1
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

    def _supervise(self) -> None:
        while not self._stop.wait(POLL_S):
            transport = self._transport
            if transport is None:
                self._reconnect()
                continue
            now = time.monotonic()
            if now - self._last_rx > self.link_loss_s:
                self._link_lost(transport, f"no data from the probe for {self.link_loss_s} s")
            elif now - self._last_tx >= self.heartbeat_s:
                try:
                    self._send(Heartbeat())
                    self._count("heartbeats_out")
                except LinkDownError:
                    pass  # _send already reported the loss

    def _reconnect(self) -> None:
        self._set_state("reconnecting", self.url)
        base, cap = self.backoff
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            with self._lock:
                self._c["reconnect_attempts"] += 1
            try:
                self._install(open_transport(self.url))
                if self._negotiated:
                    self.hello()
                if self._streaming:
                    self.start_streaming()
            except (LinkError, ProtocolError) as exc:
                with self._lock:
                    transport, self._transport = self._transport, None
                if transport is not None:
                    transport.close()
                self._count(f"reconnect_failed.{type(exc).__name__}")
                delay = min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)  # jitter
                self._stop.wait(delay)
                continue
            with self._lock:
                self._c["reconnects"] += 1
            self._set_state("connected", f"after {attempt} attempt(s)")
            return

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

    def _link_lost(self, transport: Transport, detail: str) -> None:
        with self._lock:
            if self._transport is not transport:
                return  # already handled (reader and writer can both notice the same failure)
            self._transport = None
            self._fail_pending(LinkDownError(f"link lost: {detail}"))
        transport.close()
        if self.state == "connected":
            self._set_state("disconnected", detail)

    def _fail_pending(self, exc: Exception) -> None:
        pending = list(self._pending.values()) + ([self._hello[1]] if self._hello else [])
        self._pending.clear()
        self._hello = None
        for p in pending:
            p.resolve(exc)

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
        asm = self._assembler
        before = asm.dropped["timeout"]
        asm.expire(math.inf)  # a frame in flight at the pull is lost: count it as such
        lost = asm.dropped["timeout"] - before
        asm.dropped["timeout"] -= lost
        self._carried["frames_dropped.link_lost"] += lost
        self._carried.update(self._rx_counts())

    def _rx_counts(self) -> Counter[str]:
        d, s, a = self._deframer, self._rx_seq, self._assembler
        c: Counter[str] = Counter(
            {
                "bytes_in": d.bytes_in,
                "packets_in": d.packets,
                "seq_lost": s.lost,
                "seq_gaps": s.gaps,
                "seq_stale": s.stale,
                "frames_delivered": a.completed,
            }
        )
        c.update({f"decode_errors.{k}": v for k, v in d.errors.items()})
        c.update({f"frames_dropped.{k}": v for k, v in a.dropped.items()})
        c.update({f"chunks_rejected.{k}": v for k, v in a.rejected.items()})
        return c

    def stats(self) -> dict[str, Any]:
        """Cumulative counters over all connections; nested dicts for counts by kind/reason."""
        with self._lock:
            flat = self._carried + self._rx_counts() + self._c
            state = self.state
        out: dict[str, Any] = {"state": state}
        out.update({group: {} for group in ("decode_errors", "frames_dropped", "chunks_rejected")})
        for key in (
            "bytes_in",
            "bytes_out",
            "packets_in",
            "packets_out",
            "seq_lost",
            "seq_gaps",
            "seq_stale",
            "frames_delivered",
            "reconnects",
            "heartbeats_out",
        ):
            out[key] = flat.get(key, 0)
        for key, value in sorted(flat.items()):
            group, dot, kind = key.partition(".")
            if dot:
                out.setdefault(group, {})[kind] = value
            elif key not in out:
                out[key] = value
        out["frames_dropped_total"] = sum(out["frames_dropped"].values())
        return out
