"""Probe-link framing: COBS + CRC-32 packets and a resynchronising stream deframer (PROTOCOL.md §2-3).

Pure functions and small classes, no I/O. Anything built from bytes a peer sent reports errors as
values (``DeframeError`` events) or as ``ProtocolError`` subclasses; nothing else may escape.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from cobs import cobs as _cobs

MAGIC = 0xB1  # high nibble 0xB marks the protocol, low nibble the framing version (1)
DELIMITER = b"\x00"
HEADER = struct.Struct("<BBBHI")  # magic, type, flags, seq, payload length
CRC = struct.Struct("<I")
HEADER_SIZE = HEADER.size  # 9
OVERHEAD = HEADER_SIZE + CRC.size  # 13
MAX_PAYLOAD = 65536  # 64 KiB
MAX_PACKET = OVERHEAD + MAX_PAYLOAD
# COBS adds at most one byte per 254 plus one; anything longer between delimiters cannot be a packet.
MAX_ENCODED = MAX_PACKET + MAX_PACKET // 254 + 1

FLAG_ACK_REQUESTED = 0x01


class MsgType(IntEnum):
    HELLO = 0x01
    CAPABILITIES = 0x02
    START = 0x03
    STOP = 0x04
    SET = 0x05
    FRAME_CHUNK = 0x10
    STATUS = 0x11
    ACK = 0x20
    NACK = 0x21
    HEARTBEAT = 0x30


_KNOWN_TYPES = frozenset(int(t) for t in MsgType)


class ProtocolError(ValueError):
    """Bytes from the peer that do not form a valid packet or message; names the field / offset."""

    kind = "protocol"

    def __init__(self, message: str, *, field: str | None = None, offset: int | None = None) -> None:
        where = []
        if field is not None:
            where.append(f"field {field}")
        if offset is not None:
            where.append(f"byte {offset}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.field = field
        self.offset = offset


class CobsError(ProtocolError):
    kind = "bad_cobs"


class TruncatedError(ProtocolError):
    kind = "truncated"


class CrcError(ProtocolError):
    kind = "bad_crc"


class BadMagicError(ProtocolError):
    kind = "bad_magic"


class OversizeError(ProtocolError):
    kind = "oversize"


class LengthMismatchError(ProtocolError):
    kind = "bad_length"


class UnknownTypeError(ProtocolError):
    kind = "unknown_type"


class PayloadError(ProtocolError):
    """A known message type whose payload does not parse (wrong size, bad enum, bad UTF-8...)."""

    kind = "bad_payload"


# ---------------------------------------------------------------------------------------------- COBS

_ONES = re.compile(rb"\x01+")
_RUN = b"\x01" * 16  # zero runs at least this long are skipped in one step
# The package falls back to its own slow pure Python when its C extension did not build: use ours then.
_COBS_C = bool(getattr(_cobs, "_using_extension", False))


def cobs_encode_py(data: bytes | bytearray | memoryview) -> bytes:
    """COBS-encode ``data`` (no delimiter appended), pure Python: O(zeros + n/254) steps, C-speed copies."""
    out = bytearray()
    parts = bytes(data).split(b"\x00")
    last = len(parts) - 1
    for k, part in enumerate(parts):
        n = len(part)
        start = 0
        while n - start >= 254:
            out.append(0xFF)
            out += part[start : start + 254]
            start += 254
        if k == last and n and start == n:
            break  # canonical COBS: a final full 254-byte block needs no trailing code byte
        out.append(n - start + 1)
        out += part[start:]
    return bytes(out)


def cobs_decode_py(enc: bytes | bytearray | memoryview) -> bytes:
    """Decode one COBS frame (without delimiter), pure Python. Raises ``CobsError`` naming the byte offset.

    Decoding in place: dropping the first code byte, every later code byte sits exactly where the
    previous block's implied 0x00 belongs, so it is overwritten with 0x00, or removed when the
    previous block was a full 0xFF block (no implied zero). The Python loop only hops from code byte
    to code byte (one step per 254 bytes, or per isolated zero in the data); runs of 16+ zeros (black
    image regions, encoded as runs of 0x01) take one regex step per run; copies happen in C. Worst case
    is data full of scattered zeros: one Python step per zero (~0.6 ms per 16 KiB at 30 % scattered zeros).
    """
    if not isinstance(enc, bytes):
        enc = bytes(enc)
    n = len(enc)
    if n == 0:
        raise CobsError("empty COBS frame", offset=0)
    zero = enc.find(b"\x00")
    if zero >= 0:
        raise CobsError("0x00 inside a COBS frame", offset=zero)
    out = bytearray(enc)
    drop = [0]  # code bytes with no implied zero before them: the first, and those after an 0xFF block
    prev_ff = True
    i = last = 0
    while i < n:
        code = enc[i]
        if code == 1 and enc.startswith(_RUN, i):
            m = _ONES.match(enc, i).end() - i  # type: ignore[union-attr]
            if prev_ff:
                if i:
                    drop.append(i)
                out[i + 1 : i + m] = bytes(m - 1)
            else:
                out[i : i + m] = bytes(m)
            i += m
            prev_ff = False
            continue
        if not prev_ff:
            out[i] = 0
        elif i:
            drop.append(i)
        prev_ff = code == 0xFF
        last = i
        i += code
    if i != n:
        raise CobsError(f"code byte {enc[last]} runs past the end of the {n}-byte frame", offset=last)
    if len(drop) == 1:
        del out[0]
        return bytes(out)
    drop.append(n)
    mv = memoryview(out)
    return b"".join([mv[drop[k] + 1 : drop[k + 1]] for k in range(len(drop) - 1)])


def cobs_encode(data: bytes | bytearray | memoryview) -> bytes:
    """COBS-encode ``data`` (no delimiter): the ``cobs`` package's C extension, same bytes as the Python."""
    if not _COBS_C:
        return cobs_encode_py(data)
    return _cobs.encode(data if isinstance(data, (bytes, bytearray)) else bytes(data))


def cobs_decode(enc: bytes | bytearray | memoryview) -> bytes:
    """Decode one COBS frame (without delimiter); ``CobsError`` naming the byte offset when broken.

    The C extension decodes (one call per packet instead of a Python step per zero or block); its
    ``DecodeError`` names no byte, so a frame it refuses goes through ``cobs_decode_py``, which
    raises the error with the offset (the tests hold both to the same results on any input).
    """
    if not isinstance(enc, (bytes, bytearray)):
        enc = bytes(enc)  # the extension refuses a memoryview
    if _COBS_C and enc:
        try:
            return _cobs.decode(enc)
        except _cobs.DecodeError:
            pass
    return cobs_decode_py(enc)


def _decode_frame(frame: bytearray | np.ndarray) -> bytes:
    # The deframer's frames: never empty, never holding 0x00, a bytearray or a numpy view.
    if _COBS_C:
        try:
            return _cobs.decode(frame)
        except _cobs.DecodeError:
            pass
    return cobs_decode_py(bytes(frame))


# -------------------------------------------------------------------------------------------- packets


@dataclass(frozen=True)
class Packet:
    """One validated packet: CRC good, magic good, length consistent, type known.

    ``payload`` from ``parse_packet`` is a read-only memoryview into the decoded packet (no copy:
    a frame chunk's pixels are copied once, into the frame); ``bytes(payload)`` for a copy.
    """

    type: int
    flags: int
    seq: int
    payload: bytes | memoryview


def encode_packet(msg_type: int, seq: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """Header + payload + CRC, COBS-encoded, followed by the 0x00 delimiter: ready for the wire."""
    if len(payload) > MAX_PAYLOAD:
        raise OversizeError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}", field="length")
    raw = HEADER.pack(MAGIC, msg_type, flags, seq & 0xFFFF, len(payload)) + payload
    raw += CRC.pack(zlib.crc32(raw))
    return cobs_encode(raw) + DELIMITER


def parse_packet(raw: bytes | bytearray) -> Packet:
    """Validate a COBS-decoded packet. Order: size, CRC, magic, length, type (CRC first: cheap, decisive)."""
    n = len(raw)
    if n < OVERHEAD:
        raise TruncatedError(f"packet of {n} bytes is shorter than the {OVERHEAD}-byte minimum", offset=n)
    if n > MAX_PACKET:
        raise OversizeError(f"packet of {n} bytes exceeds {MAX_PACKET}", field="length")
    (crc,) = CRC.unpack_from(raw, n - 4)
    if not isinstance(raw, bytes):
        raw = bytes(raw)  # the payload view must not change with the caller's buffer
    mv = memoryview(raw)
    if zlib.crc32(mv[: n - 4]) != crc:
        raise CrcError("CRC-32 mismatch", field="crc", offset=n - 4)
    magic, msg_type, flags, seq, length = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise BadMagicError(
            f"magic/version byte 0x{magic:02X}, expected 0x{MAGIC:02X}", field="magic", offset=0
        )
    if length != n - OVERHEAD:
        raise LengthMismatchError(
            f"length field says {length}, packet carries {n - OVERHEAD}", field="length", offset=5
        )
    if msg_type not in _KNOWN_TYPES:
        raise UnknownTypeError(f"unknown message type 0x{msg_type:02X}", field="type", offset=1)
    return Packet(msg_type, flags, seq, mv[HEADER_SIZE : n - 4])


# ------------------------------------------------------------------------------------------- deframer


@dataclass(frozen=True)
class DeframeError:
    """A rejected stretch of bytes between delimiters; ``stream_offset`` is where that stretch began."""

    kind: str
    message: str
    stream_offset: int


@dataclass
class Deframer:
    """Feed arbitrary byte chunks; get packets and error events back. Never raises on input bytes.

    Resync rule: every 0x00 ends a frame, good or bad, so after any garbage the next packet that
    follows a 0x00 is decoded. A run of more than ``MAX_ENCODED`` bytes without 0x00 is dropped
    (one ``oversize`` event) and skipped until the next 0x00, so memory stays bounded.
    """

    max_encoded: int = MAX_ENCODED
    errors: Counter[str] = field(default_factory=Counter)
    packets: int = 0
    bytes_in: int = 0
    _buf: bytearray = field(default_factory=bytearray)
    _buf_start: int = 0  # stream offset of _buf[0]
    _skipping: bool = False  # inside an oversize run, discarding until the next 0x00

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet | DeframeError]:
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        events: list[Packet | DeframeError] = []
        base = self.bytes_in
        self.bytes_in += len(data)
        # Frames go to the C decoder as numpy views of ``data``: no copy (it refuses memoryviews).
        view = np.frombuffer(data, dtype=np.uint8)
        mv = memoryview(data)  # for appending to _buf (``bytearray += ndarray`` would be numpy's add)
        pos = 0
        while True:
            end = data.find(0, pos)
            if end < 0:
                self._stash(mv, pos, base, events)
                return events
            if self._skipping:
                self._skipping = False
            elif self._buf:
                self._buf += mv[pos:end]  # a packet split across reads: the one copy it needs
                frame, self._buf = self._buf, bytearray()
                self._frame(frame, self._buf_start, events)
            elif end > pos:
                self._frame(view[pos:end], base + pos, events)
            pos = end + 1

    def _stash(self, mv: memoryview, pos: int, base: int, events: list[Packet | DeframeError]) -> None:
        if self._skipping or pos >= len(mv):
            return
        if not self._buf:
            self._buf_start = base + pos
        self._buf += mv[pos:]
        if len(self._buf) > self.max_encoded:
            self._emit_error(
                "oversize", f"more than {self.max_encoded} bytes without a delimiter", self._buf_start, events
            )
            self._buf.clear()
            self._skipping = True

    def _frame(self, frame: bytearray | np.ndarray, start: int, events: list[Packet | DeframeError]) -> None:
        if len(frame) > self.max_encoded:
            self._emit_error("oversize", f"{len(frame)}-byte frame exceeds {self.max_encoded}", start, events)
            return
        try:
            packet = parse_packet(_decode_frame(frame))
        except ProtocolError as exc:
            self._emit_error(exc.kind, str(exc), start, events)
            return
        self.packets += 1
        events.append(packet)

    def _emit_error(self, kind: str, message: str, start: int, events: list[Packet | DeframeError]) -> None:
        self.errors[kind] += 1
        events.append(DeframeError(kind, message, start))


# ------------------------------------------------------------------------------------------ sequences


@dataclass
class SequenceTracker:
    """Per-direction 16-bit sequence check. Forward jumps < 32768 count as lost packets; others as stale."""

    expected: int | None = None
    received: int = 0
    lost: int = 0
    gaps: int = 0
    stale: int = 0

    def observe(self, seq: int) -> int:
        """Record ``seq``; return how many packets were skipped just before it (0 when in order)."""
        self.received += 1
        if self.expected is None:
            self.expected = (seq + 1) & 0xFFFF
            return 0
        delta = (seq - self.expected) & 0xFFFF
        if delta >= 0x8000:  # behind us: duplicate or reordered; do not move the expectation back
            self.stale += 1
            return 0
        self.expected = (seq + 1) & 0xFFFF
        if delta:
            self.lost += delta
            self.gaps += 1
        return delta
