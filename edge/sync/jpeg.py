"""The size of a JPEG from its headers: checks a thumbnail is a JPEG without decoding it."""

from __future__ import annotations

# Start-of-frame markers (baseline, progressive, lossless, arithmetic): they hold the image size.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment; ValueError naming the byte at fault."""
    b = bytes(data)
    if b[:2] != b"\xff\xd8":
        raise ValueError("thumbnail is not a JPEG: no SOI marker (FF D8) at byte 0")
    i = 2
    while i + 4 <= len(b):
        if b[i] != 0xFF:
            raise ValueError(f"thumbnail JPEG: expected a marker (FF) at byte {i}, got {b[i]:02X}")
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers carry no length
            i += 2
            continue
        length = int.from_bytes(b[i + 2 : i + 4], "big")
        if length < 2:
            raise ValueError(f"thumbnail JPEG: segment length {length} at byte {i + 2}")
        if marker in _SOF:
            if i + 9 > len(b):
                raise ValueError(f"thumbnail JPEG: start-of-frame cut short at byte {i}")
            height = int.from_bytes(b[i + 5 : i + 7], "big")
            width = int.from_bytes(b[i + 7 : i + 9], "big")
            if width == 0 or height == 0:
                raise ValueError(f"thumbnail JPEG: zero image size in start-of-frame at byte {i}")
            return width, height
        if marker == 0xDA:  # start of scan before any start of frame
            break
        i += 2 + length
    raise ValueError(f"thumbnail JPEG: no start-of-frame segment in {len(b)} bytes")
