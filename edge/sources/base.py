"""The Source interface and its description."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from edge.frames import Frame


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source is, as far as it knows before the first frame."""

    url: str
    kind: str
    fps: float | None = None  # native rate; None when unknown (a live device that has not said)
    frame_count: int | None = None  # None for live or endless sources
    width: int | None = None
    height: int | None = None
    realtime: bool = True  # paced at the native rate rather than as fast as possible
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Source(Protocol):
    """Anything that yields Frames. Tests inject any object with these methods.

    A source may say more, for the HUD: an alarm (``status_text() -> str | None``, a probe
    unplugged) and a line of its own (``hud_text() -> str | None``, battery and temperature).
    Those are protocols of their own (``edge.runtime.ports``), found by the methods alone.
    """

    @property
    def info(self) -> SourceInfo: ...

    def open(self) -> None:
        """Acquire the device or file; raise SourceError (naming the input) when it cannot."""

    def read(self, timeout: float | None = None) -> Frame | None:
        """Return the next frame, or None at the end of a finite source or on timeout.

        ``eof`` tells the two apart. Must not raise for one bad frame of a live stream: log,
        count and go on; raise SourceError only when the source as a whole has failed.
        """

    @property
    def eof(self) -> bool:
        """True once a finite source has delivered its last frame."""

    def close(self) -> None:
        """Release the device or file; safe to call twice."""
