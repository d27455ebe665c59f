"""Fuzz and benchmark the probe-link codec (firmware_bridge.framing / messages / reassembly).

    python -m tools.probe.fuzz -n 1000000 --time-limit 300        # fuzz: exit 1 on any escaped exception,
                                                                  # 2 if the watchdog sees a hang
    python -m tools.probe.fuzz --bench                            # parse + reassembly cost per 512x512 frame

Fuzz cases: random bytes of random length, bit flips, truncations, insertions, splices of two valid
packets, clean packets after a delimiter (which must always decode), and well-framed packets (good
CRC) with mutated or truncated payloads and random types, so decode() and reassembly get hostile input.
Everything goes through one Deframer (so garbage and packets interleave as on a noisy link), then
decode(), then a FrameAssembler.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import traceback
from collections import Counter

import numpy as np

from firmware_bridge.framing import (
    HEADER_SIZE,
    DeframeError,
    Deframer,
    MsgType,
    Packet,
    ProtocolError,
    cobs_decode,
    encode_packet,
)
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
from firmware_bridge.reassembly import FrameAssembler


def valid_packets(rng: random.Random) -> list[bytes]:
    msgs: list[Message] = [
        Hello(1, 1),
        Start(),
        Stop(),
        Heartbeat(),
        Ack(7),
        Nack(8, NackCode.BUSY),
        Set(Param.GAIN_DB, 3.0),
        Set(Param.PRESET, 2),
        Set(Param.FREEZE, 1),
        Status(50, -12, 0, 3, 1),
        Capabilities(1, 2, "PX-1", "SN042", (Preset(1, "lung"), Preset(2, "abdo")), 512, 512, 8, 16384),
    ]
    for i in range(4):  # one 64x32 frame in 4 chunks: reassembly sees real frames among the noise
        data = rng.randbytes(512)
        msgs.append(FrameChunk(1, i, 4, 512 * i, 99, 64, 32, 8, Geometry.LINEAR, 0.2, 0.2, 40.0, 0, 0, data))
    return [encode(m, rng.randrange(65536)) for m in msgs]


def fuzz_case(rng: random.Random, valid: list[bytes]) -> bytes:
    kind = rng.randrange(8)
    if kind == 7:  # framing intact (good CRC) but a hostile payload: exercises decode() and reassembly
        raw = cobs_decode(rng.choice(valid)[:-1])
        payload = bytearray(raw[HEADER_SIZE:-4])
        for _ in range(rng.randrange(0, 4)):
            if payload:
                payload[rng.randrange(len(payload))] = rng.randrange(256)
        if rng.random() < 0.3:
            del payload[rng.randrange(len(payload) + 1) :]
        msg_type = rng.choice(list(MsgType)) if rng.random() < 0.5 else raw[1]
        return b"\x00" + encode_packet(msg_type, rng.randrange(65536), bytes(payload))
    if kind == 0:
        return rng.randbytes(rng.choice((rng.randrange(0, 40), rng.randrange(0, 2000))))
    if kind == 1:
        return b"\x00" + rng.choice(valid)
    w = bytearray(rng.choice(valid))
    if kind == 2:  # bit flips
        for _ in range(rng.randrange(1, 5)):
            w[rng.randrange(len(w))] ^= 1 << rng.randrange(8)
    elif kind == 3:  # truncation
        del w[rng.randrange(len(w)) :]
    elif kind == 4:  # insertion
        pos = rng.randrange(len(w))
        w[pos:pos] = rng.randbytes(rng.randrange(1, 16))
    elif kind == 5:  # splice of two packets
        other = rng.choice(valid)
        w = w[: rng.randrange(len(w))] + other[rng.randrange(len(other)) :]
    else:  # random bytes overwritten
        for _ in range(rng.randrange(1, 8)):
            w[rng.randrange(len(w))] = rng.randrange(256)
    return bytes(w)


def fuzz(n: int, seed: int, time_limit: float, watchdog_s: float) -> int:
    rng = random.Random(seed)
    valid = valid_packets(rng)
    deframer, assembler = Deframer(), FrameAssembler()
    payload_errors: Counter[str] = Counter()
    decoded = frames = escaped = 0
    progress = [time.monotonic()]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            if time.monotonic() - progress[0] > watchdog_s:
                print(f"WATCHDOG: no progress for {watchdog_s:.0f} s: hang", file=sys.stderr, flush=True)
                os._exit(2)

    threading.Thread(target=watch, daemon=True).start()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    i = 0
    for i in range(1, n + 1):
        case = fuzz_case(rng, valid)
        try:
            for ev in deframer.feed(case):
                if isinstance(ev, DeframeError):
                    continue
                try:
                    msg = decode(ev)
                except ProtocolError as exc:
                    payload_errors[exc.kind] += 1
                    continue
                decoded += 1
                if isinstance(msg, FrameChunk) and assembler.push(msg, now=i / 1000) is not None:
                    frames += 1
        except Exception:  # the codec must never let one escape: count and report it
            escaped += 1
            if escaped <= 3:
                traceback.print_exc()
        progress[0] = time.monotonic()
        if i % 10000 == 0 and time.perf_counter() - t0 > time_limit:
            break
    done.set()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        f"cases fed:        {i:,} (seed {seed}) in {wall:.1f} s wall, {cpu:.1f} s CPU: "
        f"{i / wall:,.0f} cases/s"
    )
    print(f"bytes fed:        {deframer.bytes_in:,} ({deframer.bytes_in / wall / 1e6:.1f} MB/s)")
    print(f"packets decoded:  {decoded:,}, frames reassembled: {frames:,}")
    print(f"framing errors:   {dict(sorted(deframer.errors.items()))}")
    print(f"payload errors:   {dict(sorted(payload_errors.items()))}")
    print(f"reassembly:       dropped {dict(assembler.dropped)}, rejected chunks {dict(assembler.rejected)}")
    print(f"exceptions escaped: {escaped}")
    return 1 if escaped else 0


def bmode_image(rng: np.random.Generator, h: int = 512, w: int = 512) -> np.ndarray:
    """A convex-probe-like frame: Rayleigh speckle in a sector, attenuated with depth, black outside."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(x - w / 2, y + 80)
    theta = np.arctan2(x - w / 2, y + 80)
    inside = (np.abs(theta) < 0.55) & (r > 80) & (r < 80 + h)
    speckle = rng.rayleigh(60.0, (h, w)) * np.exp(-y / (1.5 * h))
    return np.where(inside, np.clip(speckle, 0, 255), 0).astype(np.uint8)


def bench(frames: int, chunk_size: int, read_size: int, seed: int, repeats: int = 5) -> None:
    rng = np.random.default_rng(seed)
    h = w = 512
    for label, make in (
        ("uniform random pixels", lambda: rng.integers(0, 256, (h, w), dtype=np.uint8)),
        ("B-mode-like (black outside sector)", lambda: bmode_image(rng)),
    ):
        images = [make() for _ in range(8)]
        wire = bytearray()
        seq = 0
        for fid in range(frames):
            data = images[fid % len(images)].tobytes()
            count = -(-len(data) // chunk_size)
            for k in range(count):
                pixels = data[k * chunk_size : (k + 1) * chunk_size]
                chunk = FrameChunk(
                    fid,
                    k,
                    count,
                    k * chunk_size,
                    fid * 33333,
                    w,
                    h,
                    8,
                    Geometry.CONVEX,
                    0.3,
                    0.3,
                    150.0,
                    60.0,
                    40.0,
                    pixels,
                )
                wire += encode(chunk, seq)
                seq = (seq + 1) & 0xFFFF
        wire_b = bytes(wire)
        runs = []
        for _ in range(repeats):  # best of a few: the CPU is shared, the minimum is the codec's own cost
            deframer, assembler = Deframer(), FrameAssembler()
            got = 0
            cpu0 = time.process_time()
            for off in range(0, len(wire_b), read_size):  # as a serial reader would hand over its reads
                for ev in deframer.feed(wire_b[off : off + read_size]):
                    msg = decode(ev) if isinstance(ev, Packet) else None
                    if isinstance(msg, FrameChunk) and assembler.push(msg) is not None:
                        got += 1
            runs.append(time.process_time() - cpu0)
            assert got == frames and not deframer.errors, (got, deframer.errors)
        cpu = min(runs)
        per_frame_ms = cpu / frames * 1e3
        fps = frames / cpu
        need_mb_s = 30 * h * w / 1e6
        print(f"{label}: {frames} frames of {w}x{h} 8-bit, {chunk_size}-byte chunks, {read_size}-byte reads")
        print(
            f"  wire {len(wire_b) / frames / 1024:.1f} KiB/frame (COBS+headers overhead "
            f"{(len(wire_b) / frames / (h * w) - 1) * 100:.2f} %)"
        )
        print(
            f"  parse+reassembly: {per_frame_ms:.3f} ms CPU/frame (best of {repeats}; median "
            f"{sorted(runs)[len(runs) // 2] / frames * 1e3:.3f} ms), "
            f"{fps:,.0f} frames/s, {frames * h * w / cpu / 1e6:.0f} MB/s of pixels"
        )
        print(
            f"  30 fps of 512x512 needs {need_mb_s:.2f} MB/s: headroom x{fps / 30:.0f} "
            f"(uses {30 * per_frame_ms / 10:.2f} % of one core)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--cases", type=int, default=1_000_000, help="fuzz cases (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=600.0, help="stop fuzzing after this many seconds")
    ap.add_argument("--watchdog", type=float, default=10.0, help="seconds one case may take before 'hang'")
    ap.add_argument("--bench", action="store_true", help="benchmark parse + reassembly instead of fuzzing")
    ap.add_argument("--frames", type=int, default=300, help="frames per benchmark")
    ap.add_argument("--chunk-size", type=int, default=16384)
    ap.add_argument("--read-size", type=int, default=65536, help="bytes per Deframer.feed in the benchmark")
    args = ap.parse_args(argv)
    if args.bench:
        bench(args.frames, args.chunk_size, args.read_size, args.seed)
        return 0
    return fuzz(args.cases, args.seed, args.time_limit, args.watchdog)


if __name__ == "__main__":
    sys.exit(main())
