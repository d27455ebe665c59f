"""COBS, packets, the resynchronising Deframer and sequence tracking (PROTOCOL.md §2, §3, §5)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.framing import (
    MAX_ENCODED,
    MAX_PAYLOAD,
    CobsError,
    DeframeError,
    Deframer,
    MsgType,
    OversizeError,
    Packet,
    SequenceTracker,
    cobs_decode,
    cobs_decode_py,
    cobs_encode,
    cobs_encode_py,
    encode_packet,
    parse_packet,
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
    ProtocolError,
    Set,
    Start,
    Status,
    Stop,
    decode,
    encode,
)

# Reference vectors from the COBS paper / Wikipedia (canonical form).
VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
]


@pytest.mark.parametrize(("raw", "enc"), VECTORS)
def test_cobs_reference_vectors(raw: bytes, enc: bytes) -> None:
    assert cobs_encode(raw) == enc
    assert cobs_decode(enc) == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_cobs_round_trip_arbitrary_bytes(data: bytes) -> None:
    enc = cobs_encode(data)
    assert b"\x00" not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(enc) == data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"\x00", b"\x01", b"\xff", bytes(300), bytes(range(1, 255))]), max_size=12))
def test_cobs_round_trip_block_boundaries(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert cobs_decode(cobs_encode(data)) == data


def test_cobs_decode_errors_name_offset() -> None:
    with pytest.raises(CobsError) as err:
        cobs_decode(b"\x05\x11\x22")
    assert err.value.offset == 0
    with pytest.raises(CobsError):
        cobs_decode(b"\x02\x11\x00")
    with pytest.raises(CobsError):
        cobs_decode(b"")


# The C codec (the ``cobs`` package) must behave exactly as the pure-Python reference it replaced.


def _decode_outcome(decoder: object, enc: bytes) -> tuple[str, object, object]:
    try:
        return ("ok", decoder(enc), None)  # type: ignore[operator]
    except CobsError as exc:
        return ("error", str(exc), exc.offset)


_BLOCKS = st.sampled_from([b"\x00", b"\x01", b"\xff", bytes(300), bytes(range(1, 255)), b"\x01" * 40])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=3000), st.lists(_BLOCKS, max_size=12).map(b"".join)))
def test_c_encoder_gives_the_reference_bytes(data: bytes) -> None:
    assert cobs_encode(data) == cobs_encode_py(data)


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(st.binary(max_size=3000), st.lists(_BLOCKS, max_size=12).map(b"".join)),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=3),
    st.integers(0, 3),
)
def test_c_decoder_matches_the_reference_on_valid_and_damaged_frames(
    data: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    enc = bytearray(cobs_encode_py(data))
    for pos, value in edits:  # overwrite bytes (code bytes too, with 0x00 among the values)
        enc[pos % len(enc)] = value
    frame = bytes(enc[: len(enc) - cut] if cut < len(enc) else enc)
    assert _decode_outcome(cobs_decode, frame) == _decode_outcome(cobs_decode_py, frame)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_c_decoder_matches_the_reference_on_random_bytes(frame: bytes) -> None:
    assert _decode_outcome(cobs_decode, frame) == _decode_outcome(cobs_decode_py, frame)


def test_c_decoder_errors_name_the_byte_like_the_reference() -> None:
    for bad, offset in ((b"\x05\x11\x22", 0), (b"\x02\x11\x04\x33", 2), (b"\x03\x11\x00\x22", 2)):
        with pytest.raises(CobsError) as err:
            cobs_decode(bad)
        assert err.value.offset == offset
        assert _decode_outcome(cobs_decode, bad) == _decode_outcome(cobs_decode_py, bad)


def _reference_deframe(stream: bytes, max_encoded: int) -> list[tuple[object, ...]]:
    """What the deframer must report, from the spec alone: split at 0x00, decode with the reference."""
    out: list[tuple[object, ...]] = []
    start = 0
    *segments, pending = stream.split(b"\x00")
    for seg in segments:
        if len(seg) > max_encoded:
            out.append(("oversize", start))
        elif seg:
            try:
                p = parse_packet(cobs_decode_py(seg))
                out.append(("packet", p.type, p.flags, p.seq, bytes(p.payload)))
            except ProtocolError as exc:
                out.append((exc.kind, start))
        start += len(seg) + 1
    if len(pending) > max_encoded:  # reported before its delimiter comes: memory stays bounded
        out.append(("oversize", start))
    return out


def _as_tuples(events: list[Packet | DeframeError]) -> list[tuple[object, ...]]:
    return [
        ("packet", e.type, e.flags, e.seq, bytes(e.payload))
        if isinstance(e, Packet)
        else (e.kind, e.stream_offset)
        for e in events
    ]


_PIECES = st.one_of(
    st.builds(
        lambda t, s, p: encode_packet(t, s, p),
        st.sampled_from(list(MsgType)),
        st.integers(0, 65535),
        st.binary(max_size=400),
    ),
    st.binary(max_size=300),  # garbage, with or without zeros
    st.just(b"\x00"),
    st.builds(lambda n: b"\x07" * n, st.integers(0, 700)),  # runs longer than the limit below
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=10), st.lists(st.integers(1, 600), min_size=1, max_size=8))
def test_deframer_reports_what_the_reference_reads_at_any_chunking(
    pieces: list[bytes], cuts: list[int]
) -> None:
    # Same packets, error classes and stream offsets as splitting at 0x00 and decoding with the
    # pure-Python reference, however the stream is cut into reads (bytes, bytearray or memoryview).
    stream = b"".join(pieces)
    d = Deframer(max_encoded=500)
    events: list[Packet | DeframeError] = []
    pos = k = 0
    while pos < len(stream):
        n = cuts[k % len(cuts)]
        piece = stream[pos : pos + n]
        events += d.feed((bytes, bytearray, memoryview)[k % 3](piece))
        pos, k = pos + n, k + 1
    assert _as_tuples(events) == _reference_deframe(stream, 500)


def _packets(events: list[Packet | DeframeError]) -> list[Packet]:
    return [e for e in events if isinstance(e, Packet)]


def test_deframer_handles_any_chunking() -> None:
    wire = b"".join(encode_packet(MsgType.HEARTBEAT, s, bytes([s % 7]) * s) for s in range(40))
    for step in (1, 3, 17, 1000, len(wire)):
        d = Deframer()
        got: list[Packet] = []
        for i in range(0, len(wire), step):
            got += _packets(d.feed(wire[i : i + step]))
        assert [p.seq for p in got] == list(range(40))
        assert not d.errors


def test_encoder_refuses_oversize_payload() -> None:
    encode_packet(MsgType.FRAME_CHUNK, 0, bytes(MAX_PAYLOAD))
    with pytest.raises(OversizeError):
        encode_packet(MsgType.FRAME_CHUNK, 0, bytes(MAX_PAYLOAD + 1))


def test_deframer_drops_oversize_run_and_resyncs() -> None:
    d = Deframer()
    events = d.feed(b"\x07" * (MAX_ENCODED + 10))
    events += d.feed(b"\x07" * 5000)  # still inside the oversize run: discarded, no new event
    events += d.feed(b"\x00" + encode_packet(MsgType.START, 9))
    assert [e.kind for e in events if isinstance(e, DeframeError)] == ["oversize"]
    assert [p.seq for p in _packets(events)] == [9]


def test_deframer_counts_error_classes() -> None:
    good = encode_packet(MsgType.STOP, 1)
    bad_crc = bytearray(good)
    bad_crc[-2] ^= 0x40  # last CRC byte: COBS structure intact
    unknown = encode_packet(0x77, 2)
    d = Deframer()
    d.feed(b"\x05\x01\x00" + bytes(bad_crc) + unknown + b"\x02\x03\x00" + good)
    assert d.errors == {"bad_cobs": 1, "bad_crc": 1, "unknown_type": 1, "truncated": 1}
    assert d.packets == 1


def _fuzz_case(rng: random.Random, valid: list[bytes]) -> bytes:
    kind = rng.randrange(6)
    if kind == 5:
        return b"\x00" + rng.choice(valid)  # a clean packet after a delimiter must always decode
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))
    w = bytearray(rng.choice(valid))
    if kind == 1:
        for _ in range(rng.randrange(1, 4)):
            w[rng.randrange(len(w))] ^= 1 << rng.randrange(8)
    elif kind == 2:
        del w[rng.randrange(len(w)) :]
    elif kind == 3:
        pos = rng.randrange(len(w))
        w[pos:pos] = rng.randbytes(rng.randrange(1, 8))
    else:
        other = rng.choice(valid)
        w = w[: rng.randrange(len(w))] + other[rng.randrange(len(other)) :]
    return bytes(w)


def _valid_wire() -> list[bytes]:
    msgs: list[Message] = [
        Hello(1, 1),
        Start(),
        Stop(),
        Heartbeat(),
        Ack(7),
        Nack(8, NackCode.BUSY),
        Set(Param.GAIN_DB, 3.0),
        Status(50, -12, 0, 3, 1),
        Capabilities(1, 2, "PX", "S1", (Preset(1, "lung"),), 512, 512, 8, 16384),
        FrameChunk(1, 0, 1, 0, 5, 8, 4, 8, Geometry.LINEAR, 0.2, 0.2, 40.0, 0.0, 0.0, bytes(range(32))),
    ]
    return [encode(m, i) for i, m in enumerate(msgs)]


def test_fuzz_20k_random_and_mutated_packets_never_raise() -> None:
    rng = random.Random(1234)
    valid = _valid_wire()
    d = Deframer()
    decoded = bad_payload = clean = 0
    consumed = 0
    for _ in range(20_000):
        case = _fuzz_case(rng, valid)
        consumed += len(case)
        events = d.feed(case)
        if case[:1] == b"\x00" and case[1:] in valid:
            clean += 1
            assert isinstance(events[-1], Packet) and case[1:] == valid[events[-1].seq]
        for ev in events:
            if isinstance(ev, Packet):
                try:
                    decode(ev)
                    decoded += 1
                except ProtocolError:
                    bad_payload += 1
    for ev in d.feed(b"\x00"):
        assert isinstance(ev, (Packet, DeframeError))
    assert d.bytes_in == consumed + 1
    assert sum(d.errors.values()) > 1000 and decoded >= clean > 2000


def test_next_valid_packet_decodes_after_1mb_of_garbage() -> None:
    rng = random.Random(7)
    garbage = bytearray(rng.randbytes(1 << 20))
    for i in rng.sample(range(len(garbage)), 4000):
        garbage[i] = 0
    d = Deframer()
    events = d.feed(bytes(garbage))
    events += d.feed(b"\x00" + encode_packet(MsgType.HEARTBEAT, 4242))
    assert _packets(events)[-1].seq == 4242
    assert sum(d.errors.values()) > 1000


def test_every_single_bit_flip_is_rejected() -> None:
    wires = [
        encode_packet(MsgType.SET, 3, b"\x02\x00\x00\xf0\x42"),
        encode_packet(MsgType.ACK, 1, b"\x00\x01"),
        encode_packet(MsgType.HEARTBEAT, 0),
    ]
    for wire in wires:
        for bit in range(len(wire) * 8):
            bad = bytearray(wire)
            bad[bit // 8] ^= 1 << (bit % 8)
            d = Deframer()
            events = d.feed(bytes(bad) + b"\x00")
            assert not _packets(events), f"bit {bit} flipped still decoded"
            assert d.errors, f"bit {bit} flipped produced no error"


def test_sequence_tracker_counts_gaps_across_wrap() -> None:
    t = SequenceTracker()
    for s in (65533, 65534, 65535, 0, 1):
        assert t.observe(s) == 0
    assert t.observe(4) == 2  # 2 and 3 lost
    assert t.observe(3) == 0  # late: stale, expectation stays at 5
    assert t.observe(65535 - 100 + 5) == 0  # far behind: stale too
    assert (t.lost, t.gaps, t.stale) == (2, 1, 2)
    t2 = SequenceTracker()
    t2.observe(65534)
    assert t2.observe(1) == 2  # 65535 and 0 lost across the wrap
    assert (t2.lost, t2.gaps, t2.expected) == (2, 1, 2)
