"""Virtual probe: firmware emulator speaking PROTOCOL.md over a byte stream, fed by the B-mode phantom.

``VirtualProbe(scenario, ...)`` answers HELLO with CAPABILITIES, ACKs (or NACKs) START/STOP/SET, streams
each phantom frame as FRAME_CHUNK packets at the requested rate and sends STATUS once a second.
``serve(port, stop)`` runs it over a ``FdPort`` (a file descriptor) or a ``CallablePort`` (two
callables); ``emulator_pty.PtyProbe`` runs it on a pseudo-terminal, with cable pulls.

Truth side file (``truth_path``, JSON lines, never on the wire): one line per frame captured,
written before its first chunk (or when it is dropped unsent, ``"skipped": true``)::

    {"frame_id": 0, "device_time_us": 123456, "dropped_chunks": [], "skipped": false,
     "settings": {"preset": "lung", "depth_mm": null, "gain_db": 0.0, "frame_rate": 30.0},
     "truth": {...Truth.to_dict()...}}

``dropped_chunks`` lists chunk indices a ``Faults.drop_chunk_p`` fault never sent; ``settings.gain_db``
is the SET gain (added after log compression: 255/60 grey levels per dB inside the sector), while
``truth.gain_offset_db`` is the scenario's own gain event. CLI: ``python -m firmware_bridge.emulator``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import select
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from firmware_bridge import messages as m
from firmware_bridge.emulator_faults import (
    FaultInjector,
    Faults,
    fast_packet,
)
from firmware_bridge.emulator_frames import SEND_BACKLOG_BYTES, Captured, chunk_head
from firmware_bridge.framing import FLAG_ACK_REQUESTED, Deframer, MsgType, Packet, ProtocolError
from firmware_bridge.phantom import PRESETS, Scenario, Truth, frames, single

PRESET_IDS = {i + 1: name for i, name in enumerate(PRESETS)}  # wire ids in CAPABILITIES order
LIMITS = {m.Param.DEPTH_MM: (20.0, 300.0), m.Param.GAIN_DB: (-40.0, 40.0), m.Param.FRAME_RATE: (1.0, 120.0)}
DR_DB = 60.0  # the phantom's log-compression dynamic range, for the post-compression gain
_CHUNK_HEAD = struct.Struct("<IHHIQHHBBfffff")


def check_fps(name: str, fps: float) -> float:
    """Frame rate of the virtual probe: > 0 and at most the SET FRAME_RATE limit."""
    hi = LIMITS[m.Param.FRAME_RATE][1]
    if not (math.isfinite(fps) and 0 < fps <= hi):
        raise ValueError(f"{name} must be > 0 and <= {hi:g} frames/s, got {fps!r}")
    return fps


class Port(Protocol):
    def poll(self, timeout: float, want_write: bool) -> tuple[bool, bool]: ...
    def read(self) -> bytes: ...
    def write(self, data: bytes | bytearray) -> int: ...


class FdPort:
    """A non-blocking file descriptor (a pty master); the caller owns and closes it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    def poll(self, timeout: float, want_write: bool) -> tuple[bool, bool]:
        r, w, _ = select.select([self.fd], [self.fd] if want_write else [], [], max(timeout, 0.0))
        return bool(r), bool(w)

    def read(self) -> bytes:
        try:
            return os.read(self.fd, 65536)
        except BlockingIOError:
            return b""
        except OSError:  # EIO on a pty master once no slave is open: nothing to read
            return b""

    def write(self, data: bytes | bytearray) -> int:
        try:
            return os.write(self.fd, memoryview(data)[:65536])
        except BlockingIOError:
            return 0


class CallablePort:
    """``read(timeout) -> bytes`` (b"" on timeout) and a blocking ``write(bytes)``."""

    def __init__(self, read: Callable[[float], bytes], write: Callable[[bytes], Any]) -> None:
        self._read, self._write, self._got = read, write, b""

    def poll(self, timeout: float, want_write: bool) -> tuple[bool, bool]:
        self._got += self._read(0.0 if want_write else max(timeout, 0.0))
        return bool(self._got), want_write

    def read(self) -> bytes:
        got, self._got = self._got, b""
        return got

    def write(self, data: bytes | bytearray) -> int:
        self._write(bytes(data))
        return len(data)


class VirtualProbe:
    def __init__(
        self,
        scenario: Scenario,
        *,
        fps: float = 30.0,
        seed: int = 0,
        chunk_size: int = 16384,
        truth_path: str | Path | None = None,
        faults: Faults | None = None,
        serial_number: str = "EMU-0001",
        model: str = "VP-1 virtual probe",
    ) -> None:
        if not 1 <= chunk_size <= 65536 - m.CHUNK_HEADER_SIZE:
            raise ValueError(f"chunk_size {chunk_size} outside 1..{65536 - m.CHUNK_HEADER_SIZE}")
        check_fps("fps", fps)
        self.scenario, self.fps, self.seed, self.chunk_size = scenario, fps, seed, chunk_size
        self.serial_number, self.model = serial_number, model
        self.faults = faults or Faults()
        self.injector = FaultInjector(self.faults)
        self.stats: Counter[str] = Counter()
        self._truth: IO[str] | None = open(truth_path, "a", encoding="utf-8") if truth_path else None  # noqa: SIM115
        self._t0 = time.monotonic()  # the probe clock's epoch (device timestamps)
        self.frame_rate = fps
        self.gain_db = 0.0
        self.preset: str | None = None  # None: follow the scenario
        self.depth_mm: float | None = None
        self.frozen = False
        self._frames: Iterator[tuple[np.ndarray, Truth]] = frames(scenario, fps, seed)
        self._frame_id = 0  # monotonic across reconnects, so a host assembler never sees them as late
        self._last_segment: Any = None
        self._buttons = 0
        self._reset_link()

    def _reset_link(self) -> None:
        # A (re)connected probe starts over: new handshake, not streaming, sequence numbers from 0.
        self.hello_done = False
        self.streaming = False
        self._seq = 0
        self._out = bytearray()
        self._deframer = Deframer()
        waiting: Captured | None = getattr(self, "_waiting", None)
        if waiting is not None:
            self._skip(waiting)  # captured, never sent: the cable was pulled
        self._waiting: Captured | None = None

    # ------------------------------------------------------------------------------------- serving

    def serve(self, port: Port, stop: threading.Event) -> str:
        """Run until ``stop`` is set ("stopped") or a cable-pull fault fires ("disconnect")."""
        self._reset_link()
        period_next = time.monotonic()
        status_next = time.monotonic() + 1.0
        last_tx = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if self.injector.disconnect_due(now):
                return "disconnect"
            if self.injector.stalled(now):  # firmware hang: nothing read or written, frames not made
                stop.wait(0.01)
                period_next = time.monotonic()
                continue
            due = [status_next]
            if self.streaming and not self.frozen:
                due.append(period_next)
            timeout = min(min(due) - now, 0.05)  # 50 ms cap: stop and faults are noticed promptly
            noise = self.injector.take_noise()
            if noise:
                self._out += noise  # between two packets: the host loses at most the next one
            readable, writable = port.poll(timeout, bool(self._out))
            if readable:
                data = port.read()
                if data:
                    self._receive(data)
            if writable and self._out:
                n = port.write(self._out)
                del self._out[:n]
                last_tx = time.monotonic()
                self._release(last_tx)
            now = time.monotonic()
            if self.streaming and not self.frozen and now >= period_next:
                self._emit_frame(now)
                period_next += 1.0 / self.frame_rate
                if period_next < now:  # fell behind (host not reading, slow box): no catch-up burst
                    period_next = now + 1.0 / self.frame_rate
            if now >= status_next:
                status_next = now + 1.0
                if self.streaming or self.hello_done:
                    self._send(self._status(now))
                elif now - last_tx >= 1.0:
                    self._send(m.Heartbeat())
        return "stopped"

    def close(self) -> None:
        if self._truth is not None:
            self._truth.close()
            self._truth = None

    # ------------------------------------------------------------------------------------ commands

    def _send(self, msg: m.Message) -> None:
        start = len(self._out)
        self._out += m.encode(msg, self._seq)
        self._seq = (self._seq + 1) & 0xFFFF
        self.injector.corrupt(self._out, start, time.monotonic())

    def _receive(self, data: bytes) -> None:
        for ev in self._deframer.feed(data):
            if not isinstance(ev, Packet):
                self.stats[f"rx_{ev.kind}"] += 1
                continue
            try:
                msg = m.decode(ev)
            except ProtocolError as exc:
                self.stats[f"rx_{exc.kind}"] += 1
                code = m.NackCode.BAD_PARAMETER if ev.type == MsgType.SET else m.NackCode.UNKNOWN_MESSAGE
                self._send(m.Nack(ev.seq, code))
                continue
            self._handle(msg, ev)

    def _handle(self, msg: m.Message, pkt: Packet) -> None:
        if isinstance(msg, m.Hello):
            if msg.version_min > m.PROTOCOL_VERSION or msg.version_max < m.PROTOCOL_VERSION_MIN:
                self._send(m.Nack(pkt.seq, m.NackCode.UNSUPPORTED_VERSION))
                return
            self.hello_done = True
            self._send(self.capabilities())
        elif isinstance(msg, m.Heartbeat):
            if pkt.flags & FLAG_ACK_REQUESTED:
                self._send(m.Ack(pkt.seq))
        elif isinstance(msg, (m.Start, m.Stop, m.Set)):
            if not self.hello_done:
                self._send(m.Nack(pkt.seq, m.NackCode.BAD_STATE))
                return
            code = self._apply_set(msg) if isinstance(msg, m.Set) else None
            if isinstance(msg, m.Start):
                self.streaming = True
                self.injector.arm(time.monotonic())
            elif isinstance(msg, m.Stop):
                self.streaming = False
            self._send(m.Ack(pkt.seq) if code is None else m.Nack(pkt.seq, code))
        elif isinstance(msg, (m.Ack, m.Nack)):
            pass  # the probe asks for no acknowledgements
        else:  # probe -> host messages sent to the probe
            self._send(m.Nack(pkt.seq, m.NackCode.UNKNOWN_MESSAGE))

    def _apply_set(self, msg: m.Set) -> m.NackCode | None:
        v = msg.value
        if msg.param == m.Param.PRESET:
            if int(v) not in PRESET_IDS:
                return m.NackCode.BAD_PARAMETER
            self.preset = PRESET_IDS[int(v)]
            self._restart_frames()
        elif msg.param == m.Param.FREEZE:
            self.frozen = bool(v)
        else:
            lo, hi = LIMITS[msg.param]
            if not (math.isfinite(v) and lo <= v <= hi):
                return m.NackCode.BAD_PARAMETER
            if msg.param == m.Param.DEPTH_MM:
                self.depth_mm = float(v)
                self._restart_frames()
            elif msg.param == m.Param.GAIN_DB:
                self.gain_db = float(v)
            else:
                self.frame_rate = float(v)  # pacing only: the phantom keeps its own time step
        return None

    def _restart_frames(self) -> None:
        # PRESET / DEPTH leave the scenario: one long live segment with the current segment's other fields.
        base = self.scenario.segments[0] if self.scenario.segments else single().segments[0]
        seg = dataclasses.replace(
            base,
            start_s=0.0,
            duration_s=24 * 3600.0,
            preset=self.preset or base.preset,
            depth_mm=self.depth_mm or base.depth_mm,
        )
        self._frames = frames(Scenario((seg,)), self.fps, self.seed)

    def capabilities(self) -> m.Capabilities:
        presets = tuple(m.Preset(i, name) for i, name in PRESET_IDS.items())
        return m.Capabilities(
            m.PROTOCOL_VERSION_MIN,
            m.PROTOCOL_VERSION,
            self.model,
            self.serial_number,
            presets,
            512,
            512,
            8,
            self.chunk_size,
        )

    # -------------------------------------------------------------------------------- frames, status

    def _next_phantom(self) -> tuple[np.ndarray, Truth]:
        try:
            return next(self._frames)
        except StopIteration:  # the scenario ended: play it again from the start
            self._frames = frames(self.scenario, self.fps, self.seed)
            return next(self._frames)

    def _emit_frame(self, now: float) -> None:
        """Capture the next frame (it takes the next frame id, as a real probe's capture does) and
        queue it for the wire once what is queued is under one write (``_release``). A frame still
        waiting when the next one is captured is dropped and counted (``frames_skipped``), the
        newest kept, as firmware with a full USB buffer does: the host sees a frame-id gap without
        a sequence-number gap (lost at the probe, not on the link), and no frame waits here longer
        than one frame period plus one write."""
        if self._waiting is not None:
            self._skip(self._waiting)
        image, truth = self._next_phantom()
        self._track_buttons(truth)
        if self.gain_db:
            lift = np.float32(self.gain_db * 255.0 / DR_DB)
            gained = np.clip(image.astype(np.float32) + lift, 0, 255).astype(np.uint8)
            image = np.where(image > 0, gained, image)  # outside the sector stays black
        fid, ts = self._frame_id, int((now - self._t0) * 1e6)
        self._frame_id = (fid + 1) & 0xFFFFFFFF
        settings = {
            "preset": self.preset or truth.preset,
            "depth_mm": self.depth_mm,
            "gain_db": self.gain_db,
            "frame_rate": self.frame_rate,
        }
        self._waiting = Captured(fid, ts, chunk_head(image, truth), image.tobytes(), settings, truth)
        self._release(now)

    def _release(self, now: float) -> None:
        """The waiting frame into the send buffer, once that holds less than one write."""
        w = self._waiting
        if w is None or len(self._out) > SEND_BACKLOG_BYTES:
            return
        self._waiting = None
        pixels = w.pixels
        count = max(1, -(-len(pixels) // self.chunk_size))
        dropped = []
        start = len(self._out)
        for idx in range(count):
            off = idx * self.chunk_size
            payload = (
                _CHUNK_HEAD.pack(w.fid, idx, count, off, w.ts, *w.head) + pixels[off : off + self.chunk_size]
            )
            seq, self._seq = self._seq, (self._seq + 1) & 0xFFFF
            if self.injector.drop_chunk():
                dropped.append(idx)  # lost on the wire: its sequence number is used, the host sees a gap
                continue
            self._out += fast_packet(MsgType.FRAME_CHUNK, seq, payload)
        self.injector.corrupt(self._out, start, now)
        self.injector.corrupt_frame(self._out, start)
        self.stats["frames_sent"] += 1
        self._write_truth(w, dropped=dropped, skipped=False)

    def _skip(self, w: Captured) -> None:
        self._waiting = None
        self.stats["frames_skipped"] += 1
        self._write_truth(w, dropped=[], skipped=True)

    def _write_truth(self, w: Captured, *, dropped: list[int], skipped: bool) -> None:
        if self._truth is None:
            return
        self._truth.write(json.dumps(w.truth_line(dropped, skipped)) + "\n")
        self._truth.flush()  # readers (tests, evaluation) tail the file while the probe runs

    def _track_buttons(self, truth: Truth) -> None:
        # Scenario segment changes stand in for button presses: into a freeze -> freeze, new preset -> preset.
        key = (truth.preset, "freeze" in truth.events)
        if self._last_segment is not None and key != self._last_segment:
            if key[1] and not self._last_segment[1]:
                self._buttons |= 0x01
            if key[0] != self._last_segment[0]:
                self._buttons |= 0x04
        self._last_segment = key

    def _status(self, now: float) -> m.Status:
        up = now - self._t0
        battery = max(0, 100 - int(up / 36))  # 1 % per 36 s: a one-hour battery
        temp = int(300 + min(80.0, up / 6.0))  # warms from 30.0 to 38.0 °C over eight minutes
        link = (0x01 if self.streaming else 0) | (0x02 if self.frozen else 0) | 0x04
        buttons, self._buttons = self._buttons, 0
        return m.Status(battery, temp, buttons, 0, link)


if __name__ == "__main__":
    from firmware_bridge.emulator_cli import main

    sys.exit(main())
