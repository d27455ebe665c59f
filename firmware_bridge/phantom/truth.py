"""Ground truth of one frame: what the phantom drew, where, and under which operator events.

``Truth.to_dict()`` is JSON-serialisable; it goes to a side file, never over the wire. Boxes are
``[x0, y0, x1, y1]`` in output-image pixels (``px``) and in mm from the image's top-left corner
(``mm`` = ``px`` x ``pixel_spacing_mm``). One box per B-line; one per other finding region.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from firmware_bridge.phantom.geometry import ScanConverter
from firmware_bridge.phantom.scene import Scene

TRUTH_SCHEMA_VERSION = 1
LABELS = ("b_line", "pleural_line", "consolidation", "effusion", "free_fluid", "bladder")


@dataclass(frozen=True)
class Box:
    label: str
    px: tuple[float, float, float, float]
    mm: tuple[float, float, float, float]


@dataclass(frozen=True)
class Truth:
    frame_index: int
    t_s: float
    preset: str
    events: tuple[str, ...]
    contact: bool
    shadow_fraction: float  # fraction of the sector's pixels in an event's acoustic shadow
    gain_offset_db: float
    frozen: bool
    boxes: tuple[Box, ...]
    params: dict[str, Any] = field(default_factory=dict)  # the segment's finding parameters
    geometry: dict[str, Any] = field(default_factory=dict)

    def count(self, label: str) -> int:
        return sum(1 for b in self.boxes if b.label == label)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema_version"] = TRUTH_SCHEMA_VERSION
        d["events"] = list(self.events)
        d["boxes"] = [{"label": b.label, "px": list(b.px), "mm": list(b.mm)} for b in self.boxes]
        return d


def boxes_of(scene: Scene, sc: ScanConverter) -> tuple[Box, ...]:
    out: list[Box] = []
    for label in LABELS:
        for cells in scene.regions.get(label, []):
            box = sc.box_of(cells)
            if box is not None:
                px, mm = box
                out.append(Box(label, (px[0], px[1], px[2], px[3]), (mm[0], mm[1], mm[2], mm[3])))
    return tuple(out)
