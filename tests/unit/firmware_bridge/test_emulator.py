"""The virtual probe over a real pty: handshake, streaming, SET, truth side file, faults, CLI."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import messages as m
from firmware_bridge.emulator import VirtualProbe
from firmware_bridge.emulator_faults import Faults, cobs_encode_np, fast_packet
from firmware_bridge.emulator_pty import PtyProbe
from firmware_bridge.framing import Deframer, MsgType, Packet, cobs_encode
from firmware_bridge.phantom import PRESETS, frames, single
from firmware_bridge.reassembly import AssembledFrame, FrameAssembler
from tests.support.paths import REPO

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the emulator needs Linux pseudo-terminals")


class Host:
    """A minimal host: raw pty I/O, deframer, decoder, assembler."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.seq = 0
        self.deframer = Deframer()
        self.assembler = FrameAssembler()
        self.frames: list[AssembledFrame] = []
        self.messages: list[m.Message] = []
        self.gaps = 0

    def send(self, msg: m.Message) -> int:
        seq, self.seq = self.seq, self.seq + 1
        os.write(self.fd, m.encode(msg, seq))
        return seq

    def pump(self, seconds: float, until: int | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and (until is None or len(self.frames) < until):
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            try:
                data = os.read(self.fd, 1 << 20)
            except (BlockingIOError, OSError):
                continue
            for ev in self.deframer.feed(data):
                if isinstance(ev, Packet):
                    msg = m.decode(ev)
                    if isinstance(msg, m.FrameChunk):
                        done = self.assembler.push(msg, time.monotonic())
                        if done is not None:
                            self.frames.append(done)
                    else:
                        self.messages.append(msg)

    def reply_to(self, seq: int, seconds: float = 2.0) -> m.Message:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for msg in self.messages:
                if isinstance(msg, (m.Ack, m.Nack)) and msg.seq == seq:
                    return msg
            self.pump(0.05)
        raise AssertionError(f"no reply to seq {seq}")

    def handshake(self) -> m.Capabilities:
        self.send(m.Hello())
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            self.pump(0.05)
            caps = [x for x in self.messages if isinstance(x, m.Capabilities)]
            if caps:
                return caps[0]
        raise AssertionError("no CAPABILITIES")

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def probe_factory(tmp_path: Path) -> Iterator[object]:
    started: list[tuple[PtyProbe, Host]] = []

    def make(scenario: object = None, link: bool = False, **kw: object) -> tuple[PtyProbe, Host, Path]:
        truth = tmp_path / f"truth{len(started)}.jsonl"
        probe = VirtualProbe(scenario or single("lung", duration_s=60.0), truth_path=truth, **kw)  # type: ignore[arg-type]
        pty = PtyProbe(probe, link_path=str(tmp_path / "probe") if link else None)
        path = pty.start()
        host = Host(str(tmp_path / "probe") if link else path)
        started.append((pty, host))
        return pty, host, truth

    yield make
    for pty, host in started:
        pty.stop()
        pty.probe.close()
        host.close()


def test_fast_cobs_matches_reference() -> None:
    rng = np.random.default_rng(1)
    cases = [b"", b"\x00", b"\x01" * 254, b"\x01" * 508, b"\x01" * 254 + b"\x00", b"\x00" + b"\x01" * 255]
    for _ in range(300):
        a = rng.integers(1, 256, int(rng.integers(0, 1500))).astype(np.uint8)
        a[rng.random(a.size) < rng.random()] = 0
        cases.append(a.tobytes())
    for c in cases:
        assert cobs_encode_np(c) == cobs_encode(c)
    chunk = m.FrameChunk(7, 0, 2, 0, 10**6, 4, 2, 8, m.Geometry.CONVEX, 0.25, 0.25, 160, 60, 40, b"\0\1\2\3")
    assert fast_packet(MsgType.FRAME_CHUNK, 300, m.encode_payload(chunk)[1]) == m.encode(chunk, 300)


def test_capabilities_and_bad_state(probe_factory) -> None:  # type: ignore[no-untyped-def]
    _, host, _ = probe_factory(serial_number="SN9", model="PX-EMU")
    seq = host.send(m.Start())
    assert host.reply_to(seq) == m.Nack(seq, m.NackCode.BAD_STATE)  # START before HELLO
    caps = host.handshake()
    assert (caps.model, caps.serial, caps.version_min, caps.version_max) == ("PX-EMU", "SN9", 1, 1)
    assert [p.name for p in caps.presets] == list(PRESETS)
    assert (caps.max_width, caps.max_height, caps.max_bit_depth, caps.max_chunk) == (512, 512, 8, 16384)


def test_stream_rate_pixels_truth(probe_factory) -> None:  # type: ignore[no-untyped-def]
    scenario = single("lung", duration_s=60.0, b_line_count=2)
    pty, host, truth_path = probe_factory(scenario, seed=5)
    host.handshake()
    seq = host.send(m.Start())
    assert host.reply_to(seq) == m.Ack(seq)
    t0 = time.monotonic()
    host.pump(3.0, until=30)
    elapsed = time.monotonic() - t0
    got = host.frames
    assert len(got) >= 30, (len(got), pty.probe.stats)
    assert 15 <= len(got) / elapsed <= 45  # loose: a shared, noisy machine
    ts = [f.timestamp_us for f in got]
    assert 20_000 < np.median(np.diff(ts)) < 50_000  # device clock paced at ~33 ms
    expected = frames(scenario, 30.0, 5)
    made: list[np.ndarray] = []  # the phantom's frames by id: a loaded machine may drop a few
    assert [f.frame_id for f in got] == sorted({f.frame_id for f in got}), "ids in order, none twice"
    for f in got:
        assert f.image.shape == (512, 512) and f.geometry == m.Geometry.CONVEX
        while len(made) <= f.frame_id:
            made.append(next(expected)[0])
        assert np.array_equal(f.image, made[f.frame_id])  # frame ids start at 0: the same sequence
    lines = [json.loads(x) for x in truth_path.read_text().splitlines()]
    by_id = {x["frame_id"]: x for x in lines}
    for f in got:
        rec = by_id[f.frame_id]
        assert rec["device_time_us"] == f.timestamp_us and rec["truth"]["frame_index"] == f.frame_id
        assert rec["truth"]["preset"] == "lung" and rec["truth"]["params"] == {"b_line_count": 2}
    assert any(isinstance(x, m.Status) and x.link_flags & 1 for x in host.messages) or elapsed < 1.0


def test_set_gain_and_nack(probe_factory) -> None:  # type: ignore[no-untyped-def]
    _, host, _ = probe_factory()
    host.handshake()
    host.send(m.Start())
    host.pump(2.0, until=5)
    before = np.mean([f.image.mean() for f in host.frames[-3:]])
    seq = host.send(m.Set(m.Param.GAIN_DB, 12.0))
    assert host.reply_to(seq) == m.Ack(seq)
    n = len(host.frames)
    host.pump(2.0, until=n + 6)
    after = np.mean([f.image.mean() for f in host.frames[-3:]])
    assert after > before + 10
    for bad in (m.Set(m.Param.GAIN_DB, 99.0), m.Set(m.Param.PRESET, 77), m.Set(m.Param.FRAME_RATE, 0.0)):
        seq = host.send(bad)
        assert host.reply_to(seq) == m.Nack(seq, m.NackCode.BAD_PARAMETER)
    # an unknown parameter id does not decode at all: the probe still NACKs that packet
    seq = host.seq
    host.seq += 1
    from firmware_bridge.framing import encode_packet

    os.write(host.fd, encode_packet(MsgType.SET, seq, b"\x09\x01"))
    assert host.reply_to(seq) == m.Nack(seq, m.NackCode.BAD_PARAMETER)


def test_dropped_chunk_costs_exactly_that_frame(probe_factory) -> None:  # type: ignore[no-untyped-def]
    pty, host, truth_path = probe_factory(faults=Faults(drop_chunk_p=0.05, seed=3))
    host.handshake()
    host.send(m.Start())
    host.pump(2.5)
    pty.stop()
    host.pump(0.3)
    lines = [json.loads(x) for x in truth_path.read_text().splitlines()]
    hit = {x["frame_id"] for x in lines if x["dropped_chunks"]}
    assert hit, "expected some dropped chunks at p=0.05 x 16 chunks per frame"
    delivered = {f.frame_id for f in host.frames}
    assert not (delivered & hit)
    last = max(delivered)  # frames after it were still queued in the probe when it stopped
    # Frames the probe skipped (the host fell behind: never sent, their truth line says so) are not owed.
    complete = {
        x["frame_id"] for x in lines if not x["dropped_chunks"] and not x["skipped"] and x["frame_id"] <= last
    }
    # Every other frame arrived, except one the host itself gave up on (0.5 s timeout on a loaded box).
    assert len(complete - delivered) <= host.assembler.dropped["timeout"]


def test_corruption_is_counted_and_stream_continues(probe_factory) -> None:  # type: ignore[no-untyped-def]
    _, host, _ = probe_factory(faults=Faults(corrupt_bytes_per_s=20, seed=1))
    host.handshake()
    host.send(m.Start())
    host.pump(2.5)
    assert sum(host.deframer.errors.values()) >= 5, host.deframer.errors
    assert len(host.frames) >= 10  # the link resyncs: most frames still complete


def test_disconnect_repoints_symlink(probe_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pty, host, _ = probe_factory(link=True, faults=Faults(disconnect_at_s=0.5, reconnect_after_s=0.3))
    first = os.path.realpath(tmp_path / "probe")
    host.handshake()
    host.send(m.Start())
    host.pump(0.4)
    assert host.frames
    assert pty.reopened.wait(3.0)
    second = os.path.realpath(tmp_path / "probe")
    assert second != first and second == pty.path
    host.close()
    host2 = Host(str(tmp_path / "probe"))  # reconnect by the same name
    try:
        host2.handshake()
        host2.send(m.Start())
        host2.pump(2.0, until=3)
        assert len(host2.frames) >= 3
        assert host2.frames[0].frame_id > host.frames[-1].frame_id  # ids keep counting across the pull
    finally:
        host2.close()
        host.fd = os.open("/dev/null", os.O_RDONLY)  # the fixture closes it


def test_cli_prints_path_and_exits_on_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "cli-probe"
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_bridge.emulator", "--preset", "bladder", "--link", str(link)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/") and proc.stdout.readline().strip() == str(link)
        assert os.path.realpath(link) == path
        host = Host(path)
        caps = host.handshake()
        assert caps.presets[2].name == "bladder"
        host.close()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=2.0) == 0
        assert time.monotonic() - t0 < 1.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stall_pauses_stream_then_resumes(probe_factory) -> None:  # type: ignore[no-untyped-def]
    _, host, _ = probe_factory(faults=Faults(stall_at_s=0.3, stall_s=0.6))
    host.handshake()
    host.send(m.Start())
    host.pump(1.6)
    gaps = np.diff([f.timestamp_us for f in host.frames])
    assert gaps.max() >= 500_000 and len(host.frames) >= 15  # one long gap, frames before and after


def test_on_demand_faults_from_another_thread(probe_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pty, host, _ = probe_factory(link=True)
    inj = pty.probe.injector
    host.handshake()
    host.send(m.Start())
    host.pump(0.5)
    inj.noise_now(2000)  # random bytes between packets: counted as errors by the host, then resync
    inj.corrupt_frames_now(3)  # three frames damaged: each costs the host that frame
    deadline = time.monotonic() + 5.0
    while inj.counts["corrupted_frames"] < 3 and time.monotonic() < deadline:
        host.pump(0.1)
    host.pump(0.3)
    assert sum(host.deframer.errors.values()) >= 1
    assert inj.counts["noise_bytes"] == 2000 and inj.counts["corrupted_frames"] == 3
    n = len(host.frames)
    inj.stall_now(0.6)
    assert inj.stalled(time.monotonic()) and inj.counts["stalls"] == 1
    host.pump(5.0, until=n + 5)
    assert len(host.frames) >= n + 5  # streaming resumes after the stall
    first = os.path.realpath(tmp_path / "probe")
    pty.reopened.clear()
    inj.pull_now(0.2)  # a cable pull now, the pty back 0.2 s later under the same link name
    assert pty.reopened.wait(3.0)
    assert os.path.realpath(tmp_path / "probe") != first and inj.counts["disconnects"] == 1


def test_a_host_that_stops_reading_gets_the_newest_frame_not_a_backlog(probe_factory) -> None:  # type: ignore[no-untyped-def]
    pty, host, truth_path = probe_factory()
    host.handshake()
    host.send(m.Start())
    host.pump(2.0, until=5)
    before = max(f.frame_id for f in host.frames)
    time.sleep(1.5)  # the host reads nothing: the probe captures ~45 frames meanwhile
    back_us = (time.monotonic() - pty.probe._t0) * 1e6  # on the probe's clock
    host.pump(1.0)
    assert pty.probe.stats["frames_skipped"] >= 10, pty.probe.stats
    # What waited in the probe and the pty while the host was away is the frame being sent when
    # it stopped and at most one more; then come frames captured since (the old 1 MiB send buffer
    # held four, all from the start of the pause).
    stale = [f.frame_id for f in host.frames if f.frame_id > before and f.timestamp_us < back_us - 500_000]
    assert len(stale) <= 2, (stale, pty.probe.stats)
    # Dropped in the probe (a frame-id gap, told in the truth file), never on the link: every chunk
    # of every frame sent arrived.
    lines = [json.loads(x) for x in truth_path.read_text().splitlines()]
    skipped = {x["frame_id"] for x in lines if x["skipped"]}
    seen = [f.frame_id for f in host.frames]
    missing = set(range(seen[0], seen[-1] + 1)) - set(seen)
    assert missing and missing <= skipped
    assert host.assembler.dropped_total == 0 and not host.assembler.rejected
