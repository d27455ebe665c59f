"""What the runtime asks of the parts plugged into it, besides the Source and the display sinks.

- :class:`ResultHandler`: called with each ``(frame, result)`` in order, on the results thread
  (the JSONL writer, the outbox recorder). Nothing downstream reaches back for a frame.
- :class:`StatusReporter`: one short HUD line (the probe's battery, the outbox's queue, sync).
- :class:`AlarmReporter`: what is wrong with the source, drawn in red (a probe unplugged).

Structural protocols: a part implements one by having the method, and imports nothing from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from edge.frames import Frame
from edge.results import Result


class ResultHandler(Protocol):
    def __call__(self, frame: Frame | None, result: Result) -> None:
        """``frame`` is the one ``result`` describes; None when the handlers fell so far behind
        that the runtime let the frame go (results are never dropped, frames may be), or when the
        run keeps no frames for its handlers because none of them draws on one."""


@runtime_checkable
class StatusReporter(Protocol):
    def hud_text(self) -> str | None:
        """One short line for the HUD, or None when there is nothing to say. Called from the
        display thread a few times a second: cheap, and no database or network calls."""


@runtime_checkable
class AlarmReporter(Protocol):
    def status_text(self) -> str | None:
        """What is wrong, for the HUD in red; None while all is well. Called as HUD text is."""


class HudLines:
    """Several reporters' lines as one, joined by " | " (the source's link, the outbox, sync)."""

    def __init__(self, reporters: Sequence[StatusReporter]) -> None:
        self.reporters = tuple(reporters)

    def hud_text(self) -> str | None:
        return " | ".join(t for t in (r.hud_text() for r in self.reporters) if t) or None


def stage_names(parts: Sequence[object], kind: str) -> list[str]:
    """A unique stage name per part, for the failure counts and the report: its ``name`` (the
    JSONL writer's "results", the outbox's "outbox", a sink's "video"), else its function's name."""
    names: list[str] = []
    for part in parts:
        base = getattr(part, "name", None) or getattr(part, "__name__", None) or type(part).__name__
        base = f"{kind} {base}" if base.startswith("<") else str(base)  # a lambda
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}#{n}"
        names.append(name)
    return names
