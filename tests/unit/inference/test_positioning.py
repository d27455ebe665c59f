"""Positioning QA on lung boxes: the radiologist boxes of real films (a well-positioned one, one cut off
at the bases and sides), a missing field, a rotated patient, a low-confidence box, a non-chest image."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edge.inference.positioning import assess_positioning, is_chest, lung_boxes
from edge.results import Box, Finding
from edge.settings.xray import PositioningRules, XraySettings
from tests.support.xray import film, radiologist_boxes

RULES = PositioningRules()
CHEST = {"BodyPartExamined": "CHEST"}


def hw(name: str) -> tuple[int, int]:
    h, w = film(name).shape
    return (h, w)


def by_name(checks: tuple[object, ...]) -> dict[str, object]:
    return {c.name: c for c in checks}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["good", "pneumonia"])
def test_well_positioned_films_pass_every_rule(name: str) -> None:
    p = assess_positioning(radiologist_boxes(name), hw(name), CHEST, RULES)
    assert p.messages == () and not p.repeat and p.skipped is None
    checks = by_name(p.checks)
    assert set(checks) == {"lung_right_found", "lung_left_found", "lung_right_cut_off", "lung_left_cut_off",
                           "symmetry"}  # fmt: skip
    assert all(c.ok for c in p.checks)
    assert checks["symmetry"].value == pytest.approx(0.99 if name == "good" else 0.92, abs=0.01)  # type: ignore[attr-defined]


def test_a_film_cut_off_at_the_bases_and_sides_says_so_for_each_field() -> None:
    p = assess_positioning(radiologist_boxes("cut_off"), hw("cut_off"), CHEST, RULES)
    assert p.messages == (
        "consider repeat: right lung field cut off at the bottom and left edge (collimation)",
        "consider repeat: left lung field cut off at the bottom and right edge (collimation)",
    )
    assert p.repeat
    symmetry = by_name(p.checks)["symmetry"]
    assert symmetry.ok and "not judged" in symmetry.detail  # type: ignore[attr-defined]


def test_a_missing_lung_field_and_no_lung_field_at_all() -> None:
    boxes = [f for f in radiologist_boxes("good") if f.label == "lung_right"]
    p = assess_positioning(boxes, hw("good"), CHEST, RULES)
    assert p.messages == ("consider repeat: left lung field not found (cut off or not on the film)",)
    assert not by_name(p.checks)["lung_left_found"].ok  # type: ignore[attr-defined]
    none = assess_positioning((), hw("good"), {}, RULES)  # no BodyPartExamined: taken as a chest
    assert none.messages == ("consider repeat: no lung field found (is the chest on the film?)",)


def test_marked_asymmetry_reads_as_rotation_naming_the_narrower_field() -> None:
    right, left = sorted(radiologist_boxes("good"), key=lambda f: f.label != "lung_right")
    assert right.box is not None and left.box is not None
    narrow = Box(left.box.x0, left.box.y0, left.box.x0 + 0.6 * right.box.width, left.box.y1)
    p = assess_positioning([right, replace(left, box=narrow)], hw("good"), CHEST, RULES)
    assert p.messages == (
        "consider repeat: lung fields asymmetric (left 60% of the right's width): patient rotated?",
    )
    relaxed = PositioningRules(min_width_ratio=0.5, min_area_ratio=0.5)
    assert assess_positioning([right, replace(left, box=narrow)], hw("good"), CHEST, relaxed).messages == ()


def test_low_confidence_boxes_are_not_lung_fields_and_the_best_box_of_a_label_counts() -> None:
    boxes = radiologist_boxes("good")
    weak = [replace(f, confidence=0.1) if f.label == "lung_left" else f for f in boxes]
    assert set(lung_boxes(weak, RULES.min_confidence)) == {"lung_right"}
    stray = Finding("lung_right", 0.5, Box(0, 0, 10, 10))  # a second, weaker box of the same field
    right = next(f.box for f in boxes if f.label == "lung_right")
    assert lung_boxes([stray, *boxes], RULES.min_confidence)["lung_right"] == right


def test_a_film_that_is_not_a_chest_is_not_judged() -> None:
    p = assess_positioning((), hw("good"), {"BodyPartExamined": "HAND"}, RULES)
    assert p.skipped == "not a chest image (BodyPartExamined HAND)" and p.messages == () and not p.checks
    assert is_chest({"BodyPartExamined": "thorax"}, RULES) and is_chest({}, RULES)


def test_the_edge_margin_comes_from_the_config() -> None:
    # good.png's lung fields start 11% of the height below its top: a 12% margin calls them cut off.
    rules = XraySettings.model_validate({"positioning": {"edge_margin": 0.12}}).positioning
    p = assess_positioning(radiologist_boxes("good"), hw("good"), CHEST, rules)
    assert any("cut off at the top" in m for m in p.messages)
    with pytest.raises(ValueError):
        PositioningRules(edge_margin=0.6)
