"""Reassemble FRAME_CHUNK messages into frames (PROTOCOL.md §5).

One frame is in flight at a time: the probe sends frames in order, so a chunk of a newer frame means
the older one will never complete. A lost chunk costs that one frame (counted with a reason), never
the link. Pure: the caller passes the monotonic time, so tests need no clock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.messages import FrameChunk, Geometry

DEFAULT_MAX_FRAME_BYTES = 2048 * 2048 * 2  # 8 MiB: a generous ceiling against a corrupt width/height
DEFAULT_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class AssembledFrame:
    frame_id: int
    timestamp_us: int
    image: np.ndarray  # (height, width), uint8 for bit depth <= 8, else uint16
    bit_depth: int
    geometry: Geometry
    spacing_x_mm: float
    spacing_y_mm: float
    depth_mm: float
    sector_angle_deg: float
    radius_mm: float


@dataclass
class _InFlight:
    first: FrameChunk
    key: tuple[object, ...]  # _key(first)
    buf: np.ndarray  # uint8, not zeroed: a frame is delivered only when its chunks tile it exactly
    mv: memoryview  # of buf: chunk bytes land with one memcpy, whatever their type
    spans: dict[int, tuple[int, int]]  # chunk index -> (offset, length)
    started: float


def _behind(frame_id: int, ref: int) -> bool:
    # Serial-number arithmetic on u32 frame ids, so the comparison survives wrap-around.
    return (frame_id - ref) & 0xFFFFFFFF >= 0x80000000


def _tiles(spans: list[tuple[int, int]], size: int) -> bool:
    # Chunks must cover the frame exactly, without gaps or overlaps (checked once per frame, k log k).
    end = 0
    for offset, n in spans:
        if offset != end:
            return False
        end += n
    return end == size


def _key(c: FrameChunk) -> tuple[object, ...]:
    # Metadata every chunk of one frame must share; a mismatch means mixed-up or corrupt chunks.
    return (c.chunk_count, c.timestamp_us, c.width, c.height, c.bit_depth, c.geometry)


@dataclass
class FrameAssembler:
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    completed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # frames lost, by reason
    rejected: Counter[str] = field(default_factory=Counter)  # chunks ignored, by reason
    _cur: _InFlight | None = None
    _last_id: int | None = None  # id of the newest frame finished or dropped

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def push(self, chunk: FrameChunk, now: float = 0.0) -> AssembledFrame | None:
        """Add one chunk; return the frame it completes, if any."""
        self.expire(now)
        reason = self._check(chunk)
        if reason:
            self.rejected[reason] += 1
            return None
        cur = self._cur
        if cur is not None and cur.first.frame_id != chunk.frame_id:
            if _behind(chunk.frame_id, cur.first.frame_id):
                self.rejected["late_chunk"] += 1  # an older frame's straggler must not evict the newer one
                return None
            self._drop("superseded")
            cur = None
        if cur is None:
            last = self._last_id
            if last is not None and (chunk.frame_id == last or _behind(chunk.frame_id, last)):
                self.rejected["late_chunk"] += 1
                return None
            size = chunk.width * chunk.height * (1 if chunk.bit_depth <= 8 else 2)
            buf = np.empty(size, dtype=np.uint8)
            cur = self._cur = _InFlight(chunk, _key(chunk), buf, buf.data, {}, now)
        elif _key(chunk) != cur.key:
            self._drop("inconsistent_metadata")
            return None
        if chunk.chunk_index in cur.spans:
            self.rejected["duplicate"] += 1
            return None
        n = len(chunk.data)
        cur.mv[chunk.offset : chunk.offset + n] = chunk.data
        cur.spans[chunk.chunk_index] = (chunk.offset, n)
        if len(cur.spans) < chunk.chunk_count:
            return None
        if not _tiles(sorted(cur.spans.values()), len(cur.buf)):
            self._drop("size_mismatch")
            return None
        return self._finish(cur)

    def expire(self, now: float) -> None:
        """Drop the in-flight frame if its first chunk is older than ``timeout_s``."""
        if self._cur is not None and now - self._cur.started > self.timeout_s:
            self._drop("timeout")

    def _check(self, c: FrameChunk) -> str | None:
        if c.width == 0 or c.height == 0:
            return "empty_frame"
        size = c.width * c.height * (1 if c.bit_depth <= 8 else 2)
        if size > self.max_frame_bytes:
            return "oversize_frame"
        if c.chunk_count > size:
            return "bad_chunk_count"
        if not c.data:
            return "empty_chunk"
        if c.offset + len(c.data) > size:
            return "chunk_out_of_bounds"
        return None

    def _drop(self, reason: str) -> None:
        assert self._cur is not None
        self.dropped[reason] += 1
        self._last_id = self._cur.first.frame_id
        self._cur = None

    def _finish(self, cur: _InFlight) -> AssembledFrame:
        c = cur.first
        dtype = np.uint8 if c.bit_depth <= 8 else np.dtype("<u2")
        image = cur.buf.view(dtype).reshape(c.height, c.width)
        self.completed += 1
        self._last_id = c.frame_id
        self._cur = None
        return AssembledFrame(
            c.frame_id,
            c.timestamp_us,
            image,
            c.bit_depth,
            c.geometry,
            c.spacing_x_mm,
            c.spacing_y_mm,
            c.depth_mm,
            c.sector_angle_deg,
            c.radius_mm,
        )
