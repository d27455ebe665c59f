"""A scripted fake probe and a callback recorder for ProbeLink tests (loop pair or real pty)."""

from __future__ import annotations

import os
import select
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from firmware_bridge.framing import MsgType, Packet, cobs_decode, cobs_encode, encode_packet
from firmware_bridge.link import ProbeLink
from firmware_bridge.messages import (
    Ack,
    Capabilities,
    FrameChunk,
    Geometry,
    Heartbeat,
    Hello,
    Message,
    Nack,
    NackCode,
    Param,
    Preset,
    Set,
    Start,
    Status,
    Stop,
    decode,
    encode,
)
from firmware_bridge.reassembly import AssembledFrame
from firmware_bridge.transport import LoopDevice, loop_pair

Rig = tuple[ProbeLink, "FakeProbe", LoopDevice, "Recorder"]


W, H, CHUNK = 32, 16, 200  # 512-byte frames in chunks of 200, 200, 112
FAST = {"command_timeout": 0.3, "heartbeat_s": 0.1, "link_loss_s": 0.5, "backoff": (0.02, 0.1)}


def pixels(fid: int) -> np.ndarray:
    return ((np.arange(W * H) + 7 * fid) % 256).astype(np.uint8).reshape(H, W)


class Device(Protocol):
    def read(self, max_bytes: int, timeout: float) -> bytes: ...
    def write(self, data: bytes) -> None: ...


class PtyDevice:
    """The pty master as the probe's USB end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if not select.select([self.fd], [], [], timeout)[0]:
            return b""
        try:
            return os.read(self.fd, max_bytes)
        except OSError:  # EIO while no host has the slave open
            time.sleep(timeout)
            return b""

    def write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass


class FakeProbe:
    """Scripted probe: answers HELLO/START/STOP/SET, streams chunked frames + STATUS, sends heartbeats."""

    def __init__(self, dev: Device, *, versions: tuple[int, int] = (1, 1), period: float = 0.01) -> None:
        self.dev, self.versions, self.period = dev, versions, period
        self.drop: set[tuple[int, int]] = set()  # (frame_id, chunk_index) never sent
        self.garbage_before: set[int] = set()  # frame ids preceded by junk
        self.ignore_set = False
        self.muted = False  # says nothing at all (not even heartbeats) and ignores commands
        self.damage_replies = 0  # this many answers to commands go out with a broken CRC
        self.received: list[Message] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.reset()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def reset(self) -> None:  # power-on state: what a replugged probe comes back with
        from firmware_bridge.framing import Deframer

        self.deframer, self.seq, self.streaming, self.frame_id = Deframer(), 1000, False, 0
        self.last_tx = self.next_frame = 0.0

    def send(self, msg: Message) -> None:
        data = encode(msg, self.seq)
        if self.damage_replies > 0 and isinstance(msg, (Capabilities, Ack, Nack)):
            self.damage_replies -= 1
            raw = bytearray(cobs_decode(data[:-1]))
            raw[-1] ^= 0xFF  # CRC broken: the host sees bad_crc, as after a noise burst
            data = cobs_encode(bytes(raw)) + b"\x00"
        self.dev.write(data)
        self.seq += 1
        self.last_tx = time.monotonic()

    def raw(self, data: bytes) -> None:
        self.dev.write(data)

    def count(self, kind: type) -> int:
        return sum(isinstance(m, kind) for m in self.received)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            data = self.dev.read(65536, 0.003)
            with self.lock:
                for ev in self.deframer.feed(data):
                    if isinstance(ev, Packet) and not self.muted:
                        self._handle(decode(ev), ev.seq)
                now = time.monotonic()
                if self.muted:
                    continue
                if self.streaming and now >= self.next_frame:
                    self._send_frame()
                    self.next_frame = now + self.period
                elif now - self.last_tx > 0.05:
                    self.send(Heartbeat())

    def _handle(self, msg: Message, seq: int) -> None:
        self.received.append(msg)
        if isinstance(msg, Hello):
            lo, hi = self.versions
            self.send(Capabilities(lo, hi, "PX-1", "SN042", (Preset(1, "lung"),), W, H, 8, CHUNK))
        elif isinstance(msg, (Start, Stop)):
            self.streaming = isinstance(msg, Start)
            self.send(Ack(seq))
        elif isinstance(msg, Set) and not self.ignore_set:
            ok = msg.param != Param.GAIN_DB or -20 <= msg.value <= 40
            self.send(Ack(seq) if ok else Nack(seq, NackCode.BAD_PARAMETER))

    def _send_frame(self) -> None:
        fid = self.frame_id
        self.frame_id += 1
        if fid in self.garbage_before:
            bad = bytearray(cobs_decode(encode(Status(1, 2, 0, 0, 0), 0)[:-1]))
            bad[-1] ^= 0xFF  # CRC broken
            self.raw(b"\xde\xad\xbe\xef\x00" + cobs_encode(bytes(bad)) + b"\x00")
            self.raw(encode_packet(MsgType.STATUS, self.seq, b"\x01"))  # valid packet, bad payload
            self.seq += 1
        data = pixels(fid).tobytes()
        count = -(-len(data) // CHUNK)
        for idx in range(count):
            if (fid, idx) in self.drop:
                continue
            self.send(
                FrameChunk(
                    fid,
                    idx,
                    count,
                    idx * CHUNK,
                    1_000_000 + 33_333 * fid,
                    W,
                    H,
                    8,
                    Geometry.CONVEX,
                    0.25,
                    0.25,
                    160.0,
                    60.0,
                    40.0,
                    data[idx * CHUNK : (idx + 1) * CHUNK],
                )
            )
        self.send(Status(87, 352, 0, 0, 1))


class Recorder:
    """Thread-safe sink for the link's callbacks, with waits instead of sleeps."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.frames: list[AssembledFrame] = []
        self.statuses: list[Status] = []
        self.events: list[tuple[str, str]] = []

    def _add(self, items: list[Any], item: Any) -> None:
        with self.cond:
            items.append(item)
            self.cond.notify_all()

    def callbacks(self) -> dict[str, Callable[..., Any]]:
        return {
            "on_frame": lambda f: self._add(self.frames, f),
            "on_status": lambda s: self._add(self.statuses, s),
            "on_event": lambda s, d: self._add(self.events, (s, d)),
        }

    def wait(self, pred: Callable[[], bool], timeout: float = 3.0) -> None:
        with self.cond:
            assert self.cond.wait_for(pred, timeout), "condition not reached in time"

    def states(self) -> list[str]:
        with self.cond:
            return [s for s, _ in self.events]


def open_rig(**link_kw: Any) -> Iterator[Rig]:
    """A started link on a fresh named loop pair with a FakeProbe at the other end (fixture body)."""
    name = f"probe-{uuid.uuid4().hex[:8]}"
    _host, dev = loop_pair(name)
    probe = FakeProbe(dev)
    rec = Recorder()
    link = ProbeLink(f"loop://{name}", **{**rec.callbacks(), **FAST, **link_kw})
    link.start()
    yield link, probe, dev, rec
    link.stop()
    probe.stop()
    dev.close()


def check_frame(f: AssembledFrame, fid: int) -> None:
    assert f.frame_id == fid
    assert f.image.shape == (H, W) and f.image.dtype == np.uint8
    np.testing.assert_array_equal(f.image, pixels(fid))
    assert f.timestamp_us == 1_000_000 + 33_333 * fid
    assert (f.geometry, f.spacing_x_mm, f.depth_mm, f.sector_angle_deg, f.radius_mm) == (
        Geometry.CONVEX,
        0.25,
        160.0,
        60.0,
        40.0,
    )
