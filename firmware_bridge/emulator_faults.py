"""Fault injection and the byte-level helpers of the virtual probe (see ``firmware_bridge/EMULATOR.md``).

``Faults`` says what goes wrong and when; ``FaultInjector`` applies it to the outgoing byte stream.
Times are seconds after the first START the probe receives, so a test can place a fault inside
the stream it starts. A soak test injects faults at any moment from another thread instead:
``stall_now``, ``pull_now``, ``noise_now``, ``corrupt_frames_now`` (applied by the serving thread
at its next turn, counted in ``counts``). ``fast_packet`` is a numpy COBS encoder, byte-identical to
``framing.encode_packet`` (a test checks it), because the reference encoder takes ~45 ms for a
512x512 speckle frame full of zeros: too slow for 30 fps on a small box.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field, fields

import numpy as np

from firmware_bridge.framing import CRC, HEADER, MAGIC, MAX_PAYLOAD


def positive(name: str, value: float) -> float:
    """``value`` if finite and > 0, else ``ValueError`` naming ``name`` (shared by the CLI and the URL)."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return value


def non_negative(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return value


def probability(name: str, value: float) -> float:
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")
    return value


@dataclass(frozen=True)
class Faults:
    corrupt_bytes_per_s: float = 0.0  # random bytes XOR-ed in outgoing packets, on average per second
    drop_chunk_p: float = 0.0  # probability that a FRAME_CHUNK is never sent (its seq is still used)
    stall_at_s: float | None = None  # the probe sends and reads nothing from this time ...
    stall_s: float = 0.0  # ... for this long
    disconnect_at_s: float | None = None  # "cable pull": the pty is closed at this time ...
    reconnect_after_s: float = 1.0  # ... and a new one is opened this much later
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "seed" or value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"Faults.{f.name} must be a number, got {value!r}")
            check = probability if f.name == "drop_chunk_p" else non_negative
            check(f"Faults.{f.name}", float(value))


@dataclass
class FaultInjector:
    faults: Faults
    counts: Counter[str] = field(default_factory=Counter)
    t0: float | None = None  # monotonic time of the first START
    _rng: np.random.Generator = field(init=False)
    _budget: float = 0.0
    _last: float | None = None
    _disconnected: bool = False
    # On-demand faults, set from any thread under _lock, taken by the serving thread.
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stall_until: float = 0.0
    _pull: float | None = None  # reconnect delay of a requested cable pull
    _reconnect_after: float | None = None  # ... of the pull in progress
    _noise: int = 0
    _corrupt_frames: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.faults.seed)

    def stall_now(self, seconds: float) -> None:
        """Firmware hang from now on: nothing read or written for ``seconds``."""
        with self._lock:
            self._stall_until = max(self._stall_until, time.monotonic() + non_negative("stall", seconds))
            self.counts["stalls"] += 1

    def pull_now(self, reconnect_after: float) -> None:
        """Cable pull at the next turn: the pty is closed, a new one opened ``reconnect_after`` s later."""
        with self._lock:
            self._pull = non_negative("reconnect_after", reconnect_after)

    def noise_now(self, n_bytes: int) -> None:
        """``n_bytes`` random bytes on the wire between two packets (a glitch at the cable)."""
        with self._lock:
            self._noise += int(non_negative("noise", n_bytes))

    def corrupt_frames_now(self, frames: int) -> None:
        """The next ``frames`` frames each get a few bytes XOR-ed (each costs the host that one frame)."""
        with self._lock:
            self._corrupt_frames += int(non_negative("frames", frames))

    def take_noise(self) -> bytes:
        with self._lock:
            n, self._noise = self._noise, 0
        if n:
            self.counts["noise_bytes"] += n
        return self._rng.integers(0, 256, n, dtype=np.uint8).tobytes() if n else b""

    def corrupt_frame(self, buf: bytearray, start: int) -> None:
        """Damage the frame in ``buf[start:]`` if a ``corrupt_frames_now`` request is pending."""
        with self._lock:
            if self._corrupt_frames <= 0 or len(buf) <= start:
                return
            self._corrupt_frames -= 1
        n = int(self._rng.integers(1, 9))
        for pos in self._rng.integers(start, len(buf), n):
            buf[int(pos)] ^= int(self._rng.integers(1, 256))
        self.counts["corrupted_frames"] += 1

    def reconnect_after(self) -> float:
        """How long the pty stays closed after the pull that just happened."""
        after = self._reconnect_after
        return self.faults.reconnect_after_s if after is None else after

    def arm(self, now: float) -> None:
        if self.t0 is None:
            self.t0 = now

    def _since(self, now: float) -> float | None:
        return None if self.t0 is None else now - self.t0

    def drop_chunk(self) -> bool:
        p = self.faults.drop_chunk_p
        if p > 0 and self._rng.random() < p:
            self.counts["dropped_chunks"] += 1
            return True
        return False

    def corrupt(self, buf: bytearray, start: int, now: float) -> None:
        """XOR random nonzero values into ``buf[start:]`` at the configured average rate."""
        rate = self.faults.corrupt_bytes_per_s
        if rate <= 0 or len(buf) <= start:
            return
        last = now if self._last is None else self._last
        self._budget = min(self._budget + rate * (now - last), rate + 1.0)  # no burst after idle time
        self._last = now
        n = int(self._budget)
        if n <= 0:
            return
        self._budget -= n
        for pos in self._rng.integers(start, len(buf), n):
            buf[int(pos)] ^= int(self._rng.integers(1, 256))
        self.counts["corrupted_bytes"] += n

    def stalled(self, now: float) -> bool:
        if now < self._stall_until:
            return True
        t, f = self._since(now), self.faults
        return t is not None and f.stall_at_s is not None and f.stall_at_s <= t < f.stall_at_s + f.stall_s

    def disconnect_due(self, now: float) -> bool:
        """True once per cable pull: the scheduled one (``disconnect_at_s``) or one asked by ``pull_now``."""
        with self._lock:
            pull, self._pull = self._pull, None
        if pull is not None:
            self._reconnect_after = pull
            self.counts["disconnects"] += 1
            return True
        t, at = self._since(now), self.faults.disconnect_at_s
        if self._disconnected or t is None or at is None or t < at:
            return False
        self._disconnected = True
        self._reconnect_after = None
        self.counts["disconnects"] += 1
        return True


def cobs_encode_np(data: bytes | bytearray | memoryview) -> bytes:
    """Canonical COBS (no delimiter), vectorised: zero-free data with block code bytes inserted."""
    a = np.frombuffer(bytes(data), dtype=np.uint8)
    n = a.size
    zeros = np.flatnonzero(a == 0)
    seg_len = np.diff(np.concatenate(([-1], zeros, [n]))) - 1  # bytes between zeros (virtual zero at end)
    full = seg_len // 254
    rest = seg_len - 254 * full
    blocks = full + 1  # 254-byte blocks, then one final block (possibly empty) per segment
    seg_start = np.concatenate(([0], np.cumsum(seg_len)[:-1]))
    seg_of = np.repeat(np.arange(seg_len.size), blocks)
    j = np.arange(int(blocks.sum())) - np.repeat(np.concatenate(([0], np.cumsum(blocks)[:-1])), blocks)
    starts = seg_start[seg_of] + 254 * j
    codes = np.where(j < full[seg_of], 255, rest[seg_of] + 1).astype(np.uint8)
    if n and full[-1] > 0 and rest[-1] == 0:  # canonical: a final full block has no trailing code
        starts, codes = starts[:-1], codes[:-1]
    return np.insert(a[a != 0], starts, codes).tobytes()


def fast_packet(msg_type: int, seq: int, payload: bytes, flags: int = 0) -> bytes:
    """Same bytes as ``framing.encode_packet``, with the vectorised COBS encoder."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    raw = HEADER.pack(MAGIC, msg_type, flags, seq & 0xFFFF, len(payload)) + payload
    raw += CRC.pack(zlib.crc32(raw))
    return cobs_encode_np(raw) + b"\x00"
