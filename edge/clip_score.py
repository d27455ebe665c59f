"""The clip-level score: one counted label over the last seconds at one probe position.

Made by ``edge.inference.temporal`` from each frame's Result and carried on the next Result
(``Result.clip_scores``), so the overlay, the outbox and the run report all see the same number.
A domain type with no dependencies, like the Frame, so the Result can carry it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Why a window last restarted. "start": the run's first frame; "no_contact": a quality label of
# [temporal] reset_on; "gate_closed": the detector's gate shut for longer than gate_closed_s;
# "scene_change": the picture changed more than a hand on one spot changes it; "view_changed": the
# frame's size or modality changed; "source_changed": another file or stream; "gap": no frame for
# longer than max_gap_s (or time went back).
RESET_REASONS: tuple[str, ...] = (
    "start", "no_contact", "gate_closed", "scene_change", "view_changed", "source_changed", "gap",
)  # fmt: skip


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


@dataclass(frozen=True, slots=True)
class ClipScore:
    """``mean``: the mean confident count per frame over the window (None before its first
    frame); ``shown``: the number to display, one decimal, moved only when the mean moves past the
    hysteresis (so it does not flicker); ``ready``: the window spans ``min_window_s``, before which
    the score is settling and flags nothing; ``pattern``: ready and ``shown`` at or above the
    label's pattern count (the B-pattern: three or more B-lines in one view)."""

    label: str
    mean: float | None
    shown: float | None
    frames: int  # frames in the window, each one the label's detector ran on
    span_s: float  # first to last frame of the window
    window_s: float  # the window's configured length
    ready: bool
    pattern: bool
    reset: str  # why the window last restarted: one of RESET_REASONS

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": str(self.label),
            "mean": _num(self.mean),
            "shown": _num(self.shown),
            "frames": int(self.frames),
            "span_s": _num(self.span_s),
            "window_s": _num(self.window_s),
            "ready": bool(self.ready),
            "pattern": bool(self.pattern),
            "reset": str(self.reset),
        }
