"""Typed probe-link messages (PROTOCOL.md §4): ``encode(msg, seq) -> wire bytes``, ``decode(packet) -> msg``.

``decode`` raises only ``ProtocolError`` subclasses (``PayloadError`` naming the field and byte offset),
whatever the payload holds, so a reader can count and skip a bad message without losing the link.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from firmware_bridge.framing import (
    MsgType,
    Packet,
    PayloadError,
    ProtocolError,
    UnknownTypeError,
    encode_packet,
)

PROTOCOL_VERSION = 1  # the highest message-layout version this codec speaks
PROTOCOL_VERSION_MIN = 1


class Param(IntEnum):
    PRESET = 1  # u8 preset id (names come with CAPABILITIES)
    DEPTH_MM = 2  # float32
    GAIN_DB = 3  # float32
    FRAME_RATE = 4  # float32, frames per second
    FREEZE = 5  # u8, 0 = live, 1 = frozen


_INT_PARAMS = frozenset({Param.PRESET, Param.FREEZE})


class Geometry(IntEnum):
    LINEAR = 0
    CONVEX = 1
    PHASED = 2


class NackCode(IntEnum):
    UNKNOWN_MESSAGE = 1
    BAD_PARAMETER = 2
    BUSY = 3
    UNSUPPORTED_VERSION = 4
    BAD_STATE = 5
    TOO_LARGE = 6


class VersionMismatchError(ProtocolError):
    kind = "version_mismatch"


@dataclass(frozen=True)
class Hello:
    version_min: int = PROTOCOL_VERSION_MIN
    version_max: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Preset:
    id: int
    name: str


@dataclass(frozen=True)
class Capabilities:
    version_min: int
    version_max: int
    model: str
    serial: str
    presets: tuple[Preset, ...]
    max_width: int
    max_height: int
    max_bit_depth: int
    max_chunk: int


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class Set:
    param: Param
    value: float  # ints for PRESET and FREEZE


@dataclass(frozen=True)
class FrameChunk:
    frame_id: int
    chunk_index: int
    chunk_count: int
    offset: int  # byte offset of ``data`` inside the frame's pixel buffer
    timestamp_us: int
    width: int
    height: int
    bit_depth: int
    geometry: Geometry
    spacing_x_mm: float
    spacing_y_mm: float
    depth_mm: float
    sector_angle_deg: float  # 0 for linear
    radius_mm: float  # radius of curvature (convex), apex offset (phased), 0 for linear
    data: bytes | memoryview  # decoded: a read-only view into the packet, copied once into the frame


@dataclass(frozen=True)
class Status:
    battery_pct: int  # 0-100, 255 = unknown
    temperature_dc: int  # tenths of a degree Celsius, signed
    buttons: int  # bit 0 freeze, 1 save, 2 preset, 3 depth+, 4 depth-
    fault: int  # 0 = none
    link_flags: int  # bit 0 streaming, 1 frozen, 2 high-speed USB, 3 throttled (thermal)


@dataclass(frozen=True)
class Ack:
    seq: int


@dataclass(frozen=True)
class Nack:
    seq: int
    code: NackCode


Message = Hello | Capabilities | Start | Stop | Heartbeat | Set | FrameChunk | Status | Ack | Nack

_HELLO = struct.Struct("<BB")
_CAPS_TAIL = struct.Struct("<HHBI")
_CHUNK = struct.Struct("<IHHIQHHBBfffff")
CHUNK_HEADER_SIZE = _CHUNK.size  # 46
_STATUS = struct.Struct("<BhBHB")
_ACK = struct.Struct("<H")
_NACK = struct.Struct("<HB")
_F32 = struct.Struct("<f")

_EMPTY: dict[type, MsgType] = {Start: MsgType.START, Stop: MsgType.STOP, Heartbeat: MsgType.HEARTBEAT}


def _str(s: str, name: str) -> bytes:
    raw = s.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"{name} is {len(raw)} UTF-8 bytes, at most 255")
    return bytes((len(raw),)) + raw


def encode_payload(msg: Message) -> tuple[MsgType, bytes]:
    """The type code and payload bytes of ``msg`` (before header, CRC and COBS)."""
    if isinstance(msg, FrameChunk):  # hot path first
        head = _CHUNK.pack(
            msg.frame_id,
            msg.chunk_index,
            msg.chunk_count,
            msg.offset,
            msg.timestamp_us,
            msg.width,
            msg.height,
            msg.bit_depth,
            msg.geometry,
            msg.spacing_x_mm,
            msg.spacing_y_mm,
            msg.depth_mm,
            msg.sector_angle_deg,
            msg.radius_mm,
        )
        return MsgType.FRAME_CHUNK, head + bytes(msg.data)
    if isinstance(msg, Hello):
        return MsgType.HELLO, _HELLO.pack(msg.version_min, msg.version_max)
    if isinstance(msg, Capabilities):
        parts = [
            _HELLO.pack(msg.version_min, msg.version_max),
            _str(msg.model, "model"),
            _str(msg.serial, "serial"),
            bytes((len(msg.presets),)),
        ]
        parts += [bytes((p.id,)) + _str(p.name, "preset name") for p in msg.presets]
        parts.append(_CAPS_TAIL.pack(msg.max_width, msg.max_height, msg.max_bit_depth, msg.max_chunk))
        return MsgType.CAPABILITIES, b"".join(parts)
    if isinstance(msg, Set):
        value = bytes((int(msg.value),)) if msg.param in _INT_PARAMS else _F32.pack(msg.value)
        return MsgType.SET, bytes((msg.param,)) + value
    if isinstance(msg, Status):
        return MsgType.STATUS, _STATUS.pack(
            msg.battery_pct, msg.temperature_dc, msg.buttons, msg.fault, msg.link_flags
        )
    if isinstance(msg, Ack):
        return MsgType.ACK, _ACK.pack(msg.seq)
    if isinstance(msg, Nack):
        return MsgType.NACK, _NACK.pack(msg.seq, msg.code)
    return _EMPTY[type(msg)], b""


def encode(msg: Message, seq: int, flags: int = 0) -> bytes:
    """Wire bytes for ``msg`` with sequence number ``seq`` (COBS-encoded, 0x00-terminated)."""
    msg_type, payload = encode_payload(msg)
    return encode_packet(msg_type, seq, payload, flags)


class _Reader:
    """Cursor over a payload that turns short reads and bad values into ``PayloadError`` with offsets."""

    def __init__(self, msg: str, data: bytes | memoryview) -> None:
        self.msg, self.data, self.pos = msg, data, 0

    def unpack(self, st: struct.Struct, name: str) -> tuple[Any, ...]:
        if self.pos + st.size > len(self.data):
            raise PayloadError(f"{self.msg}: payload ends inside {name}", field=name, offset=self.pos)
        out = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return out

    def string(self, name: str) -> str:
        (n,) = self.unpack(_U8, f"{name} length")
        raw = self.data[self.pos : self.pos + n]
        if len(raw) != n:
            raise PayloadError(f"{self.msg}: payload ends inside {name}", field=name, offset=self.pos)
        try:
            s = str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"{self.msg}: {name} is not UTF-8", field=name, offset=self.pos) from exc
        self.pos += n
        return s

    def enum(self, cls: type[IntEnum], value: int, name: str, offset: int) -> IntEnum:
        try:
            return cls(value)
        except ValueError as exc:
            raise PayloadError(f"{self.msg}: {name} {value} unknown", field=name, offset=offset) from exc

    def end(self) -> None:
        if self.pos != len(self.data):
            raise PayloadError(
                f"{self.msg}: {len(self.data) - self.pos} unexpected trailing bytes",
                field="payload",
                offset=self.pos,
            )


_U8 = struct.Struct("<B")
_GEOMETRIES = {int(g): g for g in Geometry}


def decode(packet: Packet) -> Message:
    """Typed message from a validated packet. Raises ``ProtocolError`` subclasses only."""
    t = packet.type
    if t == MsgType.FRAME_CHUNK:  # the hot path: ~16 a frame, checked inline, pixels not copied
        payload = packet.payload
        if len(payload) < CHUNK_HEADER_SIZE:
            raise PayloadError("FRAME_CHUNK: payload ends inside header", field="header", offset=0)
        fid, idx, count, offset, ts, w, h, depth, geo, sx, sy, dmm, ang, rad = _CHUNK.unpack_from(payload)
        geometry = _GEOMETRIES.get(geo)
        if geometry is None:
            raise PayloadError(f"FRAME_CHUNK: geometry {geo} unknown", field="geometry", offset=25)
        if count == 0 or idx >= count:
            raise PayloadError(f"FRAME_CHUNK: chunk {idx} of {count}", field="chunk_index", offset=4)
        if not 1 <= depth <= 16:
            raise PayloadError(f"FRAME_CHUNK: bit depth {depth}", field="bit_depth", offset=24)
        return FrameChunk(
            fid,
            idx,
            count,
            offset,
            ts,
            w,
            h,
            depth,
            geometry,
            sx,
            sy,
            dmm,
            ang,
            rad,
            payload[CHUNK_HEADER_SIZE:],
        )
    name = MsgType(t).name if t in MsgType._value2member_map_ else f"0x{t:02X}"
    r = _Reader(name, packet.payload)
    msg: Message
    if t in (MsgType.START, MsgType.STOP, MsgType.HEARTBEAT):
        msg = Start() if t == MsgType.START else Stop() if t == MsgType.STOP else Heartbeat()
    elif t == MsgType.HELLO:
        msg = Hello(*r.unpack(_HELLO, "versions"))
    elif t == MsgType.CAPABILITIES:
        vmin, vmax = r.unpack(_HELLO, "versions")
        model = r.string("model")
        serial = r.string("serial")
        (n,) = r.unpack(_U8, "preset count")
        presets = []
        for i in range(n):
            (pid,) = r.unpack(_U8, f"preset[{i}].id")
            presets.append(Preset(pid, r.string(f"preset[{i}].name")))
        msg = Capabilities(vmin, vmax, model, serial, tuple(presets), *r.unpack(_CAPS_TAIL, "limits"))
    elif t == MsgType.SET:
        (pid,) = r.unpack(_U8, "param")
        param = Param(r.enum(Param, pid, "param", 0))
        if param in _INT_PARAMS:
            (value,) = r.unpack(_U8, "value")
            if param == Param.FREEZE and value > 1:
                raise PayloadError(f"SET: freeze value {value}", field="value", offset=1)
            msg = Set(param, value)
        else:
            msg = Set(param, r.unpack(_F32, "value")[0])
    elif t == MsgType.STATUS:
        msg = Status(*r.unpack(_STATUS, "status"))
    elif t == MsgType.ACK:
        msg = Ack(*r.unpack(_ACK, "seq"))
    elif t == MsgType.NACK:
        seq, code = r.unpack(_NACK, "nack")
        msg = Nack(seq, NackCode(r.enum(NackCode, code, "code", 2)))
    else:
        raise UnknownTypeError(f"unknown message type {name}", field="type", offset=1)
    r.end()
    return msg


def negotiate_version(host: tuple[int, int], probe: tuple[int, int]) -> int:
    """Highest version in both ranges (inclusive); ``VersionMismatchError`` naming both when none."""
    low, high = max(host[0], probe[0]), min(host[1], probe[1])
    if low > high:
        raise VersionMismatchError(
            f"no common protocol version: host speaks {host[0]}..{host[1]}, "
            f"probe speaks {probe[0]}..{probe[1]}",
            field="version",
        )
    return high
