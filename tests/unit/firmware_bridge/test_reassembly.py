"""FrameAssembler: chunks in any order become frames; a lost chunk costs one frame (PROTOCOL.md §6)."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from firmware_bridge.framing import Deframer, Packet
from firmware_bridge.messages import FrameChunk, Geometry, decode, encode
from firmware_bridge.reassembly import FrameAssembler


def chunks(frame_id: int, image: np.ndarray, chunk_size: int, bit_depth: int = 8) -> list[FrameChunk]:
    data = image.astype("<u2" if bit_depth > 8 else np.uint8).tobytes()
    offsets = list(range(0, len(data), chunk_size))
    h, w = image.shape
    return [
        FrameChunk(
            frame_id,
            i,
            len(offsets),
            off,
            1000 * frame_id,
            w,
            h,
            bit_depth,
            Geometry.CONVEX,
            0.3,
            0.3,
            150.0,
            60.0,
            40.0,
            data[off : off + chunk_size],
        )
        for i, off in enumerate(offsets)
    ]


def image(seed: int, h: int = 64, w: int = 48, high: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, (h, w)).astype(np.uint16 if high > 256 else np.uint8)


def test_in_order_frame_is_delivered_with_metadata() -> None:
    a = FrameAssembler()
    img = image(1)
    out = [a.push(c) for c in chunks(5, img, 1000)]
    assert out[:-1] == [None] * (len(out) - 1)
    frame = out[-1]
    assert frame is not None and frame.frame_id == 5 and frame.timestamp_us == 5000
    assert frame.image.dtype == np.uint8 and np.array_equal(frame.image, img)
    assert frame.geometry is Geometry.CONVEX and frame.depth_mm == 150.0
    assert a.completed == 1 and not a.dropped and not a.rejected


def test_out_of_order_and_16_bit() -> None:
    a = FrameAssembler()
    img = image(2, high=4096)
    cs = chunks(1, img, 700, bit_depth=12)
    random.Random(3).shuffle(cs)
    frames = [f for c in cs if (f := a.push(c)) is not None]
    assert len(frames) == 1 and frames[0].image.dtype == np.uint16
    assert np.array_equal(frames[0].image, img)


def test_missing_chunk_drops_only_that_frame() -> None:
    a = FrameAssembler()
    f1, f2, f3 = (chunks(i, image(i), 500) for i in (1, 2, 3))
    del f2[3]
    got = [f.frame_id for c in f1 + f2 + f3 if (f := a.push(c)) is not None]
    assert got == [1, 3]
    assert a.dropped == {"superseded": 1} and a.completed == 2


def test_duplicate_chunk_is_ignored_and_late_chunks_do_not_evict() -> None:
    a = FrameAssembler()
    c1, c2 = chunks(1, image(1), 1000), chunks(2, image(2), 1000)
    assert a.push(c1[0]) is None and a.push(c1[0]) is None
    assert a.rejected == {"duplicate": 1}
    for c in c1[1:]:
        a.push(c)
    assert a.push(c1[1]) is None  # frame 1 already delivered
    a.push(c2[0])
    assert a.push(c1[2]) is None  # straggler of an older frame
    assert a.rejected["late_chunk"] == 2
    assert next(f for c in c2[1:] if (f := a.push(c)) is not None).frame_id == 2


def test_timeout_drops_the_stalled_frame() -> None:
    a = FrameAssembler(timeout_s=0.5)
    cs = chunks(1, image(1), 1000)
    a.push(cs[0], now=10.0)
    a.expire(10.6)
    assert a.dropped == {"timeout": 1}
    assert a.push(cs[1], now=10.7) is None and a.rejected["late_chunk"] == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"width": 0}, "empty_frame"),
        ({"width": 4000, "height": 4000, "bit_depth": 16}, "oversize_frame"),
        ({"chunk_count": 60000, "width": 10, "height": 10}, "bad_chunk_count"),
        ({"data": b""}, "empty_chunk"),
        ({"offset": 64 * 48 - 10}, "chunk_out_of_bounds"),
    ],
)
def test_bad_chunks_are_rejected_with_a_reason(change: dict[str, object], reason: str) -> None:
    a = FrameAssembler()
    assert a.push(replace(chunks(1, image(1), 1000)[0], **change)) is None  # type: ignore[arg-type]
    assert a.rejected == {reason: 1} and a.completed == 0


def test_inconsistent_chunk_count_drops_the_frame() -> None:
    a = FrameAssembler()
    cs = chunks(1, image(1), 1000)
    a.push(cs[0])
    assert a.push(replace(cs[1], chunk_count=cs[1].chunk_count + 1)) is None
    assert a.dropped == {"inconsistent_metadata": 1}


def test_overlapping_chunks_that_do_not_fill_the_frame_are_dropped() -> None:
    a = FrameAssembler()
    cs = chunks(1, image(1), 1000)
    cs[-1] = replace(cs[-1], offset=0)
    for c in cs:
        assert a.push(c) is None
    assert a.dropped == {"size_mismatch": 1}


def test_wire_to_frames_end_to_end() -> None:
    imgs = [image(i, 128, 128) for i in range(4)]
    all_chunks = [c for n, im in enumerate(imgs) for c in chunks(n, im, 4096)]
    wire = b"".join(encode(c, i) for i, c in enumerate(all_chunks))
    d, a = Deframer(), FrameAssembler()
    frames = []
    for i in range(0, len(wire), 3000):
        for ev in d.feed(wire[i : i + 3000]):
            assert isinstance(ev, Packet)
            msg = decode(ev)
            assert isinstance(msg, FrameChunk)
            if (f := a.push(msg)) is not None:
                frames.append(f)
    assert [f.frame_id for f in frames] == [0, 1, 2, 3]
    assert all(np.array_equal(f.image, im) for f, im in zip(frames, imgs))
