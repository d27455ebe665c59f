"""ProbeLink against a scripted fake probe on a loop pair and on a real pty (device = pty master)."""

from __future__ import annotations

import os
import select
import threading
import time
import tty
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytest

import firmware_bridge
from firmware_bridge.framing import MsgType, Packet, cobs_decode, cobs_encode, encode_packet
from firmware_bridge.link import CommandRejected, CommandTimeout, ProbeLink
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
    VersionMismatchError,
    decode,
    encode,
)
from firmware_bridge.reassembly import AssembledFrame
from firmware_bridge.transport import LoopDevice, loop_pair

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
        self.dev.write(encode(msg, self.seq))
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


@pytest.fixture
def rig() -> Iterator[tuple[ProbeLink, FakeProbe, LoopDevice, Recorder]]:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    _host, dev = loop_pair(name)
    probe = FakeProbe(dev)
    rec = Recorder()
    link = ProbeLink(f"loop://{name}", **rec.callbacks(), **FAST)  # type: ignore[arg-type]
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


def test_hello_stream_status_set(rig: tuple[ProbeLink, FakeProbe, LoopDevice, Recorder]) -> None:
    link, probe, _dev, rec = rig
    assert link.hello() == 1
    assert link.capabilities is not None and link.capabilities.model == "PX-1"
    link.set(Param.DEPTH_MM, 120.0)
    link.start_streaming()
    rec.wait(lambda: len(rec.frames) >= 5 and len(rec.statuses) >= 1)
    link.stop_streaming()
    for i, f in enumerate(rec.frames[:5]):
        check_frame(f, i)
    assert rec.statuses[0] == Status(87, 352, 0, 0, 1)
    assert Set(Param.DEPTH_MM, 120.0) in probe.received
    s = link.stats()
    assert s["frames_delivered"] >= 5 and s["frames_dropped_total"] == 0
    assert s["decode_errors"] == {} and s["seq_gaps"] == 0
    assert s["bytes_in"] > 5 * W * H and s["packets_out"] >= 4 and s["state"] == "connected"


def test_dropped_chunk_costs_exactly_one_frame(
    rig: tuple[ProbeLink, FakeProbe, LoopDevice, Recorder],
) -> None:
    link, probe, _dev, rec = rig
    probe.drop = {(2, 1)}
    link.hello()
    link.start_streaming()
    rec.wait(lambda: len(rec.frames) >= 5)
    ids = [f.frame_id for f in rec.frames[:5]]
    assert ids == [0, 1, 3, 4, 5]
    check_frame(rec.frames[2], 3)
    s = link.stats()
    assert s["frames_dropped"] == {"superseded": 1}
    assert s["seq_gaps"] == 0  # the probe never sent it: no sequence gap, only a frame loss


def test_garbage_is_counted_and_skipped(rig: tuple[ProbeLink, FakeProbe, LoopDevice, Recorder]) -> None:
    link, probe, _dev, rec = rig
    probe.garbage_before = {1, 3}
    link.hello()
    link.start_streaming()
    rec.wait(lambda: len(rec.frames) >= 5)
    assert [f.frame_id for f in rec.frames[:5]] == [0, 1, 2, 3, 4]
    for i in range(5):
        check_frame(rec.frames[i], i)
    assert link.stats()["decode_errors"] == {"bad_cobs": 2, "bad_crc": 2, "bad_payload": 2}


def test_version_mismatch_names_both_ranges() -> None:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    _host, dev = loop_pair(name)
    probe = FakeProbe(dev, versions=(2, 3))
    try:
        with pytest.raises(VersionMismatchError, match=r"host speaks 1\.\.1, probe speaks 2\.\.3"):
            firmware_bridge.open(f"loop://{name}", **FAST)
    finally:
        probe.stop()
        dev.close()


def test_command_timeout(rig: tuple[ProbeLink, FakeProbe, LoopDevice, Recorder]) -> None:
    link, probe, _dev, _rec = rig
    link.hello()
    probe.ignore_set = True
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout, match="SET GAIN_DB"):
        link.set(Param.GAIN_DB, 3.0, attempts=1)
    assert 0.25 <= time.monotonic() - t0 < 1.0


def test_unanswered_command_is_retried_then_names_port_and_attempts(
    rig: tuple[ProbeLink, FakeProbe, LoopDevice, Recorder],
) -> None:
    link, probe, _dev, _rec = rig
    link.hello()
    probe.ignore_set = True
    with pytest.raises(CommandTimeout) as info:
        link.set(Param.GAIN_DB, 3.0, attempts=3)
    msg = str(info.value)
    assert "SET GAIN_DB" in msg and link.url in msg and "3 attempt(s)" in msg
    assert "bytes came back" in msg  # the probe kept talking (status, heartbeats): not a dead line
    sets = [x for x in probe.received if isinstance(x, Set)]
    assert len(sets) == 3
    assert link.stats()["command_retries"] == 2


def test_nack_raises_with_code(rig: tuple[ProbeLink, FakeProbe, LoopDevice, Recorder]) -> None:
    link, _probe, _dev, _rec = rig
    link.hello()
    with pytest.raises(CommandRejected, match="BAD_PARAMETER") as info:
        link.set(Param.GAIN_DB, 99.0)
    assert info.value.code == NackCode.BAD_PARAMETER
    link.set(Param.GAIN_DB, 6.0)  # the link is fine afterwards


def test_heartbeat_sent_when_idle(rig: tuple[ProbeLink, FakeProbe, LoopDevice, Recorder]) -> None:
    link, probe, _dev, _rec = rig
    deadline = time.monotonic() + 2
    while probe.count(Heartbeat) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert probe.count(Heartbeat) >= 2 and link.stats()["heartbeats_out"] >= 2


def test_cable_pull_loop_reconnects_and_resumes(
    rig: tuple[ProbeLink, FakeProbe, LoopDevice, Recorder],
) -> None:
    link, probe, dev, rec = rig
    link.hello()
    link.start_streaming()
    rec.wait(lambda: len(rec.frames) >= 3)
    with probe.lock:  # pull the cable; the probe powers down and comes back fresh
        dev.disconnect()
        probe.reset()
        before = list(rec.frames)
    rec.wait(lambda: "disconnected" in rec.states())
    time.sleep(0.05)  # a few failing reopen attempts while unplugged
    dev.reconnect()
    rec.wait(lambda: rec.states().count("connected") == 2)
    rec.wait(lambda: len(rec.frames) >= len(before) + 3)
    assert rec.states()[:4] == ["connected", "disconnected", "reconnecting", "connected"]
    assert rec.frames[: len(before)] == before  # nothing delivered before the pull is lost
    check_frame(rec.frames[len(before)], 0)  # the replugged probe restarts at frame 0
    assert probe.count(Hello) == 2 and probe.count(Start) == 2  # hello re-run, streaming restored
    s = link.stats()
    assert s["reconnects"] == 1 and s["reconnect_attempts"] >= 1 and s["state"] == "connected"


def test_silence_is_link_loss(rig: tuple[ProbeLink, FakeProbe, LoopDevice, Recorder]) -> None:
    link, probe, _dev, rec = rig
    link.hello()
    probe.muted = True
    rec.wait(lambda: "disconnected" in rec.states())
    assert "no data" in rec.events[1][1]
    probe.muted = False
    rec.wait(lambda: rec.states().count("connected") == 2)
    assert link.version == 1


def test_stop_is_prompt_even_while_reconnecting() -> None:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    _host, dev = loop_pair(name)
    probe = FakeProbe(dev)
    link = firmware_bridge.open(f"loop://{name}", command_timeout=2.0, heartbeat_s=0.1, link_loss_s=0.3)
    probe.muted = True  # reconnects will sit in hello() waiting for CAPABILITIES
    time.sleep(0.5)
    t0 = time.monotonic()
    link.stop()
    assert time.monotonic() - t0 < 1.0
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("probe-"))
    probe.stop()
    dev.close()


# ---------------------------------------------------------------------------------------- real pty


def new_pty(path: Path) -> int:
    master, slave = os.openpty()
    tty.setraw(slave)
    tmp = path.with_suffix(".new")
    tmp.symlink_to(os.ttyname(slave))
    tmp.replace(path)  # atomic re-point, like udev recreating /dev/serial/by-id/...
    os.close(slave)
    return master


def test_pty_streaming_and_cable_pull(tmp_path: Path) -> None:
    node = tmp_path / "ttyProbe"
    master = new_pty(node)
    probe = FakeProbe(PtyDevice(master))
    rec = Recorder()
    link = ProbeLink(f"serial://{node}", **rec.callbacks(), **FAST)  # type: ignore[arg-type]
    link.start()
    try:
        assert link.hello() == 1
        link.start_streaming()
        rec.wait(lambda: len(rec.frames) >= 3)
        for i in range(3):
            check_frame(rec.frames[i], i)
        probe.stop()
        os.close(master)  # the pull: the device end of the tty goes away
        rec.wait(lambda: "disconnected" in rec.states())
        before = list(rec.frames)
        master = new_pty(node)  # replug: a new tty behind the same name
        probe = FakeProbe(PtyDevice(master))
        rec.wait(lambda: rec.states().count("connected") == 2)
        rec.wait(lambda: len(rec.frames) >= len(before) + 3)
        assert rec.states()[:4] == ["connected", "disconnected", "reconnecting", "connected"]
        assert rec.frames[: len(before)] == before
        check_frame(rec.frames[len(before)], 0)
        assert link.stats()["reconnects"] == 1
    finally:
        link.stop()
        probe.stop()
        os.close(master)
