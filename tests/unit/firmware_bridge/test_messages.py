"""Messages: byte-exact against PROTOCOL.md's examples, round trips, payload errors (PROTOCOL.md §4, §7)."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.framing import MsgType, Packet, PayloadError, ProtocolError, cobs_decode, parse_packet
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
from tests.support.paths import REPO

DOC = REPO / "firmware_bridge" / "PROTOCOL.md"

# The messages PROTOCOL.md §8 describes in words; the doc's hex must be exactly their encoding.
EXAMPLES: dict[str, tuple[Message, int]] = {
    "HELLO": (Hello(1, 1), 0),
    "CAPABILITIES": (
        Capabilities(1, 1, "PX-1", "SN042", (Preset(1, "lung"), Preset(2, "abdo")), 512, 512, 8, 16384),
        0,
    ),
    "START": (Start(), 1),
    "STOP": (Stop(), 2),
    "SET_PRESET": (Set(Param.PRESET, 1), 3),
    "SET_DEPTH": (Set(Param.DEPTH_MM, 120.0), 4),
    "SET_GAIN": (Set(Param.GAIN_DB, -6.5), 5),
    "SET_FRAME_RATE": (Set(Param.FRAME_RATE, 30.0), 6),
    "SET_FREEZE": (Set(Param.FREEZE, 1), 7),
    "FRAME_CHUNK": (
        FrameChunk(
            7,
            0,
            2,
            0,
            1_000_000,
            4,
            2,
            8,
            Geometry.CONVEX,
            0.25,
            0.25,
            160.0,
            60.0,
            40.0,
            bytes([0, 1, 2, 3]),
        ),
        300,
    ),
    "STATUS": (Status(87, 352, 0x01, 0, 0x05), 301),
    "ACK": (Ack(3), 1),
    "NACK": (Nack(4, NackCode.BAD_PARAMETER), 2),
    "HEARTBEAT": (Heartbeat(), 65535),
}


def _doc_blocks(kind: str) -> dict[str, bytes]:
    text = DOC.read_text(encoding="utf-8")
    return {
        name: bytes.fromhex(body)
        for name, body in re.findall(rf"```{kind} (\w+)\n(.*?)```", text, flags=re.S)
    }


def test_doc_has_an_example_for_every_message_type() -> None:
    wire = _doc_blocks("wire")
    assert set(wire) == set(EXAMPLES)
    covered = {parse_packet(cobs_decode(w[:-1])).type for w in wire.values()}
    assert covered == {int(t) for t in MsgType}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_doc_example_is_byte_exact(name: str) -> None:
    msg, seq = EXAMPLES[name]
    wire = _doc_blocks("wire")[name]
    packet = _doc_blocks("packet")[name]
    assert encode(msg, seq) == wire
    assert cobs_decode(wire[:-1]) == packet
    parsed = parse_packet(packet)
    assert parsed.seq == seq
    assert decode(parsed) == msg


u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
f32 = st.floats(width=32, allow_nan=False)
name = st.text(max_size=40)

messages = st.one_of(
    st.builds(Hello, u8, u8),
    st.builds(
        Capabilities,
        u8,
        u8,
        name,
        name,
        st.lists(st.builds(Preset, u8, name), max_size=8).map(tuple),
        u16,
        u16,
        u8,
        u32,
    ),
    st.just(Start()),
    st.just(Stop()),
    st.just(Heartbeat()),
    st.builds(Set, st.sampled_from([Param.DEPTH_MM, Param.GAIN_DB, Param.FRAME_RATE]), f32),
    st.builds(Set, st.just(Param.PRESET), u8),
    st.builds(Set, st.just(Param.FREEZE), st.integers(0, 1)),
    st.builds(
        FrameChunk,
        u32,
        st.just(0),
        st.integers(1, 0xFFFF),
        u32,
        st.integers(0, 2**64 - 1),
        u16,
        u16,
        st.integers(1, 16),
        st.sampled_from(list(Geometry)),
        f32,
        f32,
        f32,
        f32,
        f32,
        st.binary(max_size=600),
    ),
    st.builds(Status, u8, st.integers(-32768, 32767), u8, u16, u8),
    st.builds(Ack, u16),
    st.builds(Nack, u16, st.sampled_from(list(NackCode))),
)


@settings(max_examples=400, deadline=None)
@given(messages, u16)
def test_every_message_round_trips(msg: Message, seq: int) -> None:
    packet = parse_packet(cobs_decode(encode(msg, seq)[:-1]))
    assert packet.seq == seq
    assert decode(packet) == msg


@pytest.mark.parametrize(
    ("msg_type", "payload", "field"),
    [
        (MsgType.HELLO, b"\x01", "versions"),
        (MsgType.START, b"\x00", "payload"),
        (MsgType.SET, b"\x09\x00", "param"),
        (MsgType.SET, b"\x05\x02", "value"),
        (MsgType.SET, b"\x02\x00", "value"),
        (MsgType.NACK, b"\x01\x00\x63", "code"),
        (MsgType.CAPABILITIES, b"\x01\x01\x05PX", "model"),
        (MsgType.CAPABILITIES, b"\x01\x01\x02\xff\xfe", "model"),
        (MsgType.FRAME_CHUNK, bytes(20), "header"),
        (MsgType.FRAME_CHUNK, bytes(25) + b"\x09" + bytes(20), "geometry"),
    ],
)
def test_bad_payload_names_the_field(msg_type: int, payload: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as err:
        decode(Packet(msg_type, 0, 0, payload))
    assert err.value.field == field


def test_chunk_index_must_be_below_count() -> None:
    ok = encode(EXAMPLES["FRAME_CHUNK"][0], 0)
    payload = bytearray(parse_packet(cobs_decode(ok[:-1])).payload)
    payload[4] = 2  # chunk_index 2 of 2
    with pytest.raises(PayloadError, match="chunk 2 of 2"):
        decode(Packet(MsgType.FRAME_CHUNK, 0, 0, bytes(payload)))


def test_string_longer_than_255_bytes_is_refused_by_the_encoder() -> None:
    with pytest.raises(ValueError, match="model"):
        encode(Capabilities(1, 1, "x" * 256, "", (), 1, 1, 8, 1), 0)


def test_version_negotiation_picks_highest_common() -> None:
    from firmware_bridge.messages import negotiate_version

    assert negotiate_version((1, 3), (2, 5)) == 3
    assert negotiate_version((1, 1), (1, 1)) == 1
    with pytest.raises(VersionMismatchError, match=r"host speaks 1\.\.1, probe speaks 2\.\.3"):
        negotiate_version((1, 1), (2, 3))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([int(t) for t in MsgType] + [0x00, 0x7F, 0xFF]), st.binary(max_size=120))
def test_decode_of_arbitrary_payload_raises_only_protocol_errors(msg_type: int, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):  # anything else escaping fails the test
        decode(Packet(msg_type, 0, 0, payload))
