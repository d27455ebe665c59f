"""Positioning QA of a chest X-ray from the lung-field detector's boxes (``lung_right``, ``lung_left``:
the patient's right lung is on the image's left on a PA or AP film).

Three rules, each a "consider repeat: ..." message while the patient is still there:

- a lung field missing (not on the film, or the detector could not find it);
- a lung field cut off by the image edge: its box within ``edge_margin`` of an edge (collimation
  too tight, or the detector placed too high, low or to one side);
- marked left/right asymmetry (rotation): the narrower field's width, or the smaller field's
  area, under ``min_width_ratio`` / ``min_area_ratio`` of the other's. Not judged when a field is cut
  off at a side: its box is short for that reason.

Thresholds in ``[xray.positioning]`` (:mod:`edge.settings.xray`; defaults and why in docs/xray.md).
The rules see boxes only: a well-positioned film the detector boxes badly is called as boxed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edge.inference.exposure import code_of
from edge.results import Box, Finding
from edge.settings.xray import PositioningRules
from edge.xray_qa import REPEAT, PositionCheck, Positioning

LUNG_LABELS = ("lung_right", "lung_left")
_SIDE = {"lung_right": "right", "lung_left": "left"}


def is_chest(meta: Mapping[str, Any], rules: PositioningRules) -> bool:
    """A chest image, or one that does not say what it is (BodyPartExamined absent)."""
    part = str(meta.get("BodyPartExamined") or "").strip().upper()
    return not part or part in rules.chest_body_parts


def lung_boxes(findings: Sequence[Finding], min_confidence: float) -> dict[str, Box]:
    """The most confident box of each lung label at or above ``min_confidence``."""
    best: dict[str, Finding] = {}
    for f in findings:
        wanted = f.label in LUNG_LABELS and f.box is not None and f.confidence >= min_confidence
        if wanted and (f.label not in best or f.confidence > best[f.label].confidence):
            best[f.label] = f
    return {label: f.box for label, f in best.items() if f.box is not None}


def _cut_edges(box: Box, width: int, height: int, margin: float) -> list[str]:
    """The image edges ``box`` comes within ``margin`` (a share of the image's size) of."""
    mx, my = margin * width, margin * height
    edges = []
    if box.y0 <= my:
        edges.append("top")
    if box.y1 >= height - my:
        edges.append("bottom")
    if box.x0 <= mx:
        edges.append("left edge")
    if box.x1 >= width - mx:
        edges.append("right edge")
    return edges


def _edge_distance(box: Box, width: int, height: int) -> float:
    return min(box.x0 / width, box.y0 / height, (width - box.x1) / width, (height - box.y1) / height)


def assess_positioning(
    findings: Sequence[Finding], frame_hw: tuple[int, int], meta: Mapping[str, Any], rules: PositioningRules
) -> Positioning:
    """The positioning verdict of one chest X-ray from its lung boxes (frame pixels)."""
    if not is_chest(meta, rules):
        part = code_of(meta, "BodyPartExamined")
        return Positioning(skipped=f"not a chest image (BodyPartExamined {part})")
    height, width = frame_hw
    boxes = lung_boxes(findings, rules.min_confidence)
    checks: list[PositionCheck] = []
    messages: list[str] = []
    if not boxes:
        checks += [PositionCheck(f"{label}_found", False) for label in LUNG_LABELS]
        messages.append(f"{REPEAT}: no lung field found (is the chest on the film?)")
        return Positioning(tuple(checks), tuple(messages))
    side_cut = False
    for label in LUNG_LABELS:
        side = _SIDE[label]
        box = boxes.get(label)
        checks.append(PositionCheck(f"{label}_found", box is not None))
        if box is None:
            messages.append(f"{REPEAT}: {side} lung field not found (cut off or not on the film)")
            continue
        edges = _cut_edges(box, width, height, rules.edge_margin)
        distance = _edge_distance(box, width, height)
        checks.append(PositionCheck(f"{label}_cut_off", not edges, distance, ", ".join(edges)))
        if edges:
            messages.append(f"{REPEAT}: {side} lung field cut off at the {' and '.join(edges)} (collimation)")
            side_cut = side_cut or any(e.endswith("edge") for e in edges)
    if len(boxes) == 2:
        right, left = boxes["lung_right"], boxes["lung_left"]
        check = _symmetry(right, left, rules, judged=not side_cut)
        checks.append(check)
        if not check.ok:
            messages.append(f"{REPEAT}: {check.detail}")
    return Positioning(tuple(checks), tuple(messages))


def _symmetry(right: Box, left: Box, rules: PositioningRules, *, judged: bool) -> PositionCheck:
    """Width and area ratios of the two lung fields (narrower over wider); rotated when either is low."""
    widths = {"right": right.width, "left": left.width}
    areas = {"right": right.width * right.height, "left": left.width * left.height}
    width_ratio = min(widths.values()) / max(max(widths.values()), 1e-9)
    area_ratio = min(areas.values()) / max(max(areas.values()), 1e-9)
    if not judged:
        return PositionCheck("symmetry", True, width_ratio, "not judged: a lung field is cut off at a side")
    if width_ratio >= rules.min_width_ratio and area_ratio >= rules.min_area_ratio:
        return PositionCheck("symmetry", True, width_ratio, f"width ratio {width_ratio:.2f}")
    by_width = width_ratio < rules.min_width_ratio
    sizes = widths if by_width else areas
    small = min(sizes, key=sizes.__getitem__)
    other = "left" if small == "right" else "right"
    measure, ratio = ("width", width_ratio) if by_width else ("area", area_ratio)
    detail = f"lung fields asymmetric ({small} {ratio:.0%} of the {other}'s {measure}): patient rotated?"
    return PositionCheck("symmetry", False, width_ratio, detail)
