"""What a Result carries of an X-ray's own checks: exposure, positioning and a finding's heatmap.

Made by ``edge.inference.exposure``, ``edge.inference.positioning`` and the classification task;
drawn by ``edge.render.xray_overlay``; kept and sent by the outbox (schema v4). Domain types with no
dependencies, like the clip score, so the Result can carry them (docs/xray.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

# Exposure bands of the deviation index (edge.settings.xray: thresholds and their source).
ExposureBand = Literal["within", "over", "over_far", "under", "under_far"]
EXPOSURE_BANDS: tuple[str, ...] = ("within", "over", "over_far", "under", "under_far")
NO_EXPOSURE_INDEX = "no exposure index in the file"
REPEAT = "consider repeat"


def _num(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


@dataclass(frozen=True, slots=True)
class Exposure:
    """The image's exposure against its target (IEC 62494-1), and what to do about it.

    ``di_from`` says where DI came from: "computed" (10 log10(EI / target)), "file" (the file's
    DeviationIndex, EI or a target missing), or None (no DI: ``message`` says why). ``target_from``
    says where the target came from ("file", "detector <id>", "body part <name>"). ``band`` is None
    without a DI. ``repeat``: the message recommends a repeat now, while the patient is there.
    """

    ei: float | None
    target: float | None
    di: float | None
    di_from: Literal["computed", "file"] | None
    target_from: str | None
    band: ExposureBand | None
    message: str
    repeat: bool = False
    clipped_fraction: float | None = None  # share of stored pixels at the detector's top value

    def to_dict(self) -> dict[str, Any]:
        return {
            "ei": _num(self.ei),
            "target": _num(self.target),
            "di": _num(self.di, 2),
            "di_from": self.di_from,
            "target_from": self.target_from,
            "band": self.band,
            "message": self.message,
            "repeat": bool(self.repeat),
            "clipped_fraction": _num(self.clipped_fraction, 4),
        }


@dataclass(frozen=True, slots=True)
class PositionCheck:
    """One positioning rule on the lung boxes: its name, whether it passed, its measure, its words."""

    name: str  # "lung_right_found", "lung_left_cut_off", "symmetry", ...
    ok: bool
    value: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": bool(self.ok), "value": _num(self.value), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Positioning:
    """The positioning rules' verdict: every check made, and a "consider repeat: ..." message for
    each that failed (empty: positioned well, as far as the lung boxes tell). ``skipped`` says why
    no check was made (not a chest image, say)."""

    checks: tuple[PositionCheck, ...] = ()
    messages: tuple[str, ...] = ()
    skipped: str | None = None

    @property
    def repeat(self) -> bool:
        return bool(self.messages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": list(self.messages),
            "repeat": self.repeat,
            "skipped": self.skipped,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True, slots=True, eq=False)
class Heatmap:
    """A class-activation map of ``label``: ``values`` (float32, h x w at the model's own small size,
    min-max scaled to 0..1) cover the frame rectangle ``(x0, y0, x1, y1)`` in frame pixels (the model's
    input mapped back). Device-side for the overlay; the message carries it when it is small."""

    label: str
    values: np.ndarray
    x0: float
    y0: float
    x1: float
    y1: float

    WIRE_MAX_CELLS = 256  # 16 x 16: a map this small travels in the message (about 1.5 kB)

    def to_dict(self) -> dict[str, Any] | None:
        if self.values.size > self.WIRE_MAX_CELLS:
            return None
        return {
            "label": self.label,
            "rect": [_num(v, 1) for v in (self.x0, self.y0, self.x1, self.y1)],
            "values": [[round(float(v), 3) for v in row] for row in self.values],
        }
