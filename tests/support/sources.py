"""Reading any source (the ``Source`` protocol: ``read(timeout) -> Frame | None``) in a test."""

from __future__ import annotations

from edge.frames import Frame
from edge.sources.base import Source


def read_all(src: Source, limit: int = 1000, timeout: float | None = 5.0) -> list[Frame]:
    """Frames until the source gives none (its end, or nothing within ``timeout``), at most ``limit``."""
    frames: list[Frame] = []
    while len(frames) < limit:
        frame = src.read(timeout)
        if frame is None:
            break
        frames.append(frame)
    return frames
