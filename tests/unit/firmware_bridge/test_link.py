"""ProbeLink against a scripted fake probe on a loop pair and on a real pty (device = pty master)."""

from __future__ import annotations

import os
import threading
import time
import tty
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import firmware_bridge
from firmware_bridge.link import CommandRejected, CommandTimeout, ProbeLink
from firmware_bridge.messages import (
    Heartbeat,
    Hello,
    NackCode,
    Param,
    Set,
    Start,
    Status,
    VersionMismatchError,
)
from firmware_bridge.reassembly import AssembledFrame
from firmware_bridge.transport import LinkDownError, LoopDevice, loop_pair, open_transport, register_transport
from tests.support.fake_probe import FAST, FakeProbe, H, PtyDevice, Recorder, Rig, W, check_frame, open_rig


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from open_rig()


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


class RaisesOnRead:
    """A loop transport whose next ``n`` reads raise what pyserial raised when closed under a read."""

    fail = 0

    def __init__(self, url: str) -> None:
        self.inner = open_transport(url.replace("raising://", "loop://"))

    @property
    def is_open(self) -> bool:
        return self.inner.is_open

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if RaisesOnRead.fail > 0:
            RaisesOnRead.fail -= 1
            raise TypeError("'NoneType' object cannot be interpreted as an integer")
        return self.inner.read(max_bytes, timeout)

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def close(self) -> None:
        self.inner.close()


def test_an_unexpected_read_error_drops_the_connection_and_the_link_recovers() -> None:
    register_transport("raising", RaisesOnRead)
    name = f"probe-{uuid.uuid4().hex[:8]}"
    _host, dev = loop_pair(name)
    probe, rec = FakeProbe(dev), Recorder()
    link = ProbeLink(f"raising://{name}", **{**rec.callbacks(), **FAST})
    link.start()
    try:
        link.hello()
        link.start_streaming()
        rec.wait(lambda: len(rec.frames) >= 3)
        RaisesOnRead.fail = 1
        rec.wait(lambda: rec.states().count("connected") == 2)
        n = len(rec.frames)
        rec.wait(lambda: len(rec.frames) >= n + 3)  # streaming restored on the new connection
        s = link.stats()
        assert s["reader_errors"] == {"TypeError": 1} and s["reconnects"] == 1 and s["reader_restarts"] == 0
        assert link.failed is None and link._reader is not None and link._reader.is_alive()
    finally:
        link.stop()
        probe.stop()
        dev.close()


def test_a_dead_reader_thread_is_restarted() -> None:
    rec = Recorder()
    armed = threading.Event()

    def on_frame(frame: AssembledFrame) -> None:
        if armed.is_set():
            armed.clear()
            raise SystemExit("callback exited")  # escapes the reader's per-event guard: the thread ends
        rec.callbacks()["on_frame"](frame)

    rig = open_rig(on_frame=on_frame)
    link, _probe, _dev, _rec = next(rig)
    link.hello()
    link.start_streaming()
    rec.wait(lambda: len(rec.frames) >= 2)
    armed.set()
    rec.wait(lambda: not armed.is_set() and link.stats()["reader_restarts"] == 1)
    n = len(rec.frames)
    rec.wait(lambda: len(rec.frames) >= n + 3)
    assert link.failed is None and link.state == "connected"
    next(rig, None)  # stop


def test_a_reader_that_keeps_dying_fails_the_link_with_the_reason() -> None:
    def on_frame(frame: AssembledFrame) -> None:
        raise SystemExit("callback exited")

    rig = open_rig(on_frame=on_frame, reader_restarts=(1, 60.0))
    link, _probe, _dev, rec = next(rig)
    link.hello()
    link.start_streaming()
    rec.wait(lambda: "failed" in rec.states(), timeout=5.0)
    why = link.failed
    assert why is not None and "reader thread died 2 times" in why and "SystemExit" in why
    assert link.state == "failed"
    with pytest.raises(LinkDownError):
        link.set(Param.GAIN_DB, 1.0)
    next(rig, None)  # stop


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
