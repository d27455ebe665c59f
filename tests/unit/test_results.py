"""Result types: UUIDv7 ids, JSON-safe dicts, box normalisation and mm conversion."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from edge.frames import Frame, Geometry
from edge.results import (
    PRIORITY_FINDING,
    PRIORITY_NONE,
    PRIORITY_URGENT,
    Box,
    Device,
    Finding,
    ModelInfo,
    Quality,
    Result,
    StageTimes,
    Thumbnail,
    feedback_message,
    new_result_id,
    priority_for,
    result_for,
    result_message,
    uuid7_time_ms,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "result.schema.json"


def validator(ref: str | None = None) -> jsonschema.Draft202012Validator:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    if ref is not None:
        schema = {**schema, "$ref": f"#/$defs/{ref}"}
        del schema["oneOf"]
    return jsonschema.Draft202012Validator(schema)


def make_result(**overrides: object) -> Result:
    fields: dict[str, object] = {
        "result_id": new_result_id(),
        "frame_seq": 7,
        "frame_wall_time": 1_700_000_000.25,
        "source_id": "probe+emu://?preset=lung",
        "modality": "US",
        "quality": Quality(
            "diagnostic", np.float32(0.9), True, {"diagnostic": np.float32(0.9), "no_contact": 0.1}
        ),
        "findings": (
            Finding("b_line", np.float32(0.8), Box(10, 20, 30, 60), False, np.int64(1)),
            Finding("effusion", 0.4, Box(-5, 0, 50, 40), True, 2),
            Finding("whole_image", 0.7),
        ),
        "models": (
            ModelInfo("us-quality", "1.0.0", "ab" * 32, "int8", "onnxruntime", "CPUExecutionProvider"),
        ),
        "times": StageTimes(1_000_000, 3_000_000, 4_000_000, 9_000_000, 10_500_000),
        "image_size": (100, 80),
        "pixel_spacing_mm": (0.5, 0.25),
    }
    fields.update(overrides)
    return Result(**fields)  # type: ignore[arg-type]


def test_ids_are_uuid7_unique_and_sort_by_time() -> None:
    t0 = time.time_ns() // 1_000_000
    ids = [new_result_id() for _ in range(10_000)]
    t1 = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # generation order == string order, even within one millisecond
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [u.int for u in parsed] == sorted(u.int for u in parsed)
    assert t0 <= uuid7_time_ms(ids[0]) <= uuid7_time_ms(ids[-1]) <= t1


def test_ids_from_many_threads_are_unique() -> None:
    out: list[list[str]] = [[] for _ in range(4)]

    def work(k: int) -> None:
        out[k] = [new_result_id() for _ in range(2_000)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for part in out for i in part]
    assert len(set(flat)) == len(flat)
    assert all(part == sorted(part) for part in out)


def test_ids_never_go_back_when_the_clock_does(monkeypatch: pytest.MonkeyPatch) -> None:
    first = new_result_id()
    monkeypatch.setattr(time, "time_ns", lambda: 0)  # the wall clock jumps to 1970
    later = [new_result_id() for _ in range(5)]
    assert [first, *later] == sorted([first, *later])
    assert len(set(later)) == 5


def test_to_dict_is_plain_json() -> None:
    d = make_result().to_dict()
    text = json.dumps(d, allow_nan=False)  # numpy scalars would make this raise
    back = json.loads(text)
    assert back["frame_time"] == "2023-11-14T22:13:20.250000Z"
    assert back["modality"] == "US"
    assert back["quality"]["score"] == pytest.approx(0.9)
    assert back["findings"][0]["class_id"] == 1 and back["findings"][0]["needs_review"] is False
    assert back["findings"][0]["box_norm"] == pytest.approx([0.1, 0.25, 0.3, 0.75])
    assert back["findings"][0]["box_mm"] == pytest.approx([2.5, 10.0, 7.5, 30.0])
    assert back["findings"][2]["box"] is None
    assert back["models"][0]["precision"] == "int8"
    assert back["times"]["model_ms"] == pytest.approx(5.0)
    assert back["schema_version"] == 2 and back["kind"] == "result"
    assert back["needs_review"] is True  # the second finding is flagged


def test_to_dict_without_geometry_and_with_nan() -> None:
    r = make_result(quality=Quality("x", float("nan"), False, {"x": float("inf")}), image_size=None,
                    pixel_spacing_mm=None)  # fmt: skip
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["quality"]["score"] is None and d["quality"]["probabilities"] == {"x": None}
    assert "box_norm" not in d["findings"][0]
    assert d["findings"][0]["box_mm"] is None


def test_box_normalized_and_mm() -> None:
    b = Box(64.0, 32.0, 128.0, 96.0)
    assert b.normalized(256, 128) == pytest.approx((0.25, 0.25, 0.5, 0.75))
    # spacing is (row, column): y scales by the row spacing, x by the column spacing
    assert b.to_mm((0.2, 0.1)) == pytest.approx((6.4, 6.4, 12.8, 19.2))
    assert b.to_mm(None) is None
    assert (b.width, b.height) == (64.0, 64.0)
    with pytest.raises(ValueError):
        b.normalized(0, 10)


def test_box_overhang_clip_and_order() -> None:
    b = Box(-10, -5, 110, 50)
    assert b.normalized(100, 100) == pytest.approx((-0.1, -0.05, 1.1, 0.5))  # not clipped
    assert b.clipped(100, 100) == Box(0, 0, 100, 50)
    assert Box(200, 200, 300, 300).clipped(100, 100).width == 0
    assert Box(30, 40, 10, 20) == Box(10, 20, 30, 40)  # swapped corners put right
    with pytest.raises(ValueError):
        Box(0, 0, float("nan"), 1)


def test_stage_times() -> None:
    t = StageTimes(0, 2_000_000, 3_000_000, 8_000_000, 8_500_000)
    assert (t.queue_ms, t.pre_ms, t.model_ms, t.post_ms) == pytest.approx((2.0, 1.0, 5.0, 0.5))
    assert t.e2e_ms == pytest.approx(8.5)
    assert t.overhead_ms == pytest.approx(3.5)


def test_types_are_frozen() -> None:
    r = make_result()
    with pytest.raises(AttributeError):
        r.priority = 3  # type: ignore[misc]
    assert make_result(findings=(Finding("a", 0.2, None, True),)).needs_review


def test_priority_rule() -> None:
    urgent = {"effusion"}
    assert priority_for([], urgent) == PRIORITY_NONE
    assert priority_for([Finding("b_line", 0.9)], urgent) == PRIORITY_FINDING
    assert priority_for([Finding("effusion", 0.9)], urgent) == PRIORITY_URGENT
    # an urgent label the model is unsure of is a finding to review, not an urgent one
    assert priority_for([Finding("effusion", 0.3, needs_review=True)], urgent) == PRIORITY_FINDING


def test_result_message_wraps_the_result() -> None:
    r = make_result(priority=PRIORITY_URGENT)
    thumb = Thumbnail(b"\xff\xd8jpeg", 64, 48)
    m = result_message(r, Device("edge-a1", "ward 3"), exam_pseudonym="exam-1", thumbnail=thumb)
    assert m["kind"] == "result" and m["schema_version"] == 2
    assert m["device"] == {"id": "edge-a1", "site": "ward 3"} and m["exam_pseudonym"] == "exam-1"
    t = m["thumbnail"]
    assert t["mime"] == "image/jpeg" and (t["width"], t["height"]) == (64, 48)
    assert base64.b64decode(t["data_b64"]) == b"\xff\xd8jpeg"
    assert m["result_id"] == r.result_id and m["priority"] == PRIORITY_URGENT
    assert result_message(r.to_dict(), Device("x"))["thumbnail"] is None  # a dict works too
    json.dumps(m, allow_nan=False)


def test_feedback_message() -> None:
    rid = new_result_id()
    m = feedback_message(rid, "reject", Device("edge-a1"), operator="op-7", wall_time=1_700_000_000.0)
    assert m["kind"] == "feedback" and m["result_id"] == rid and m["verdict"] == "reject"
    assert m["feedback_id"] != rid and uuid.UUID(m["feedback_id"]).version == 7
    assert m["time"] == "2023-11-14T22:13:20.000000Z" and m["operator"] == "op-7"
    with pytest.raises(ValueError, match="verdict"):
        feedback_message(rid, "maybe", Device("edge-a1"))
    with pytest.raises(ValueError, match="not a UUID"):
        feedback_message("12", "confirm", Device("edge-a1"))


def _runtime_result(spacing: tuple[float, float] | None, findings: tuple[Finding, ...]) -> Result:
    geometry = Geometry(pixel_spacing_mm=spacing)
    frame = Frame(np.zeros((480, 640, 3), np.uint8), 42, 1_000, "probe+emu://?preset=lung", geometry=geometry)
    quality = Quality("diagnostic", np.float32(0.91), True, {"diagnostic": np.float32(0.91), "shadow": 0.09})
    models = (ModelInfo("us-quality", "1.0.0", "cd" * 32, "int8", "onnxruntime", "CPUExecutionProvider"),)
    times = StageTimes(1_000, 2_000, 3_000, 900_000, 1_000_000)
    return result_for(frame, quality, findings, models, times, priority=priority_for(findings, {"effusion"}))


@pytest.mark.parametrize("spacing", [(0.3, 0.25), None])
def test_runtime_results_match_the_json_schema(spacing: tuple[float, float] | None) -> None:
    findings = (
        Finding("effusion", np.float32(0.9), Box(10, 20, 200, 300), False, np.int64(1)),
        Finding("b_line", 0.3, Box(-5, 0, 700, 40), True, 2),
        Finding("whole_image", 0.7),
    )
    r = _runtime_result(spacing, findings)
    body = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    validator("result_body").validate(body)
    thumb = Thumbnail(b"\xff\xd8\xff\xd9", 256, 192)
    for m in (result_message(r, Device("edge-a1"), exam_pseudonym="exam-1", thumbnail=thumb),
              result_message(r, Device("edge-a1", "ward 3"))):  # fmt: skip
        validator().validate(json.loads(json.dumps(m, allow_nan=False)))
    fb = feedback_message(r.result_id, "confirm", Device("edge-a1"))
    validator().validate(fb)
    validator().validate({**fb, "priority": 2})


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda m: m.update(priority="high"), "priority"),
        (lambda m: m.pop("device"), "device"),
        (lambda m: m.update(result_id="0000"), "result_id"),
        (lambda m: m.update(patient_name="DOE^JOHN"), "patient_name"),  # nothing unlisted goes out
        (lambda m: m["findings"][0].update(box_mm=[1, 2]), "box_mm"),
        (lambda m: m["models"][0].update(sha256="xyz"), "sha256"),
        (lambda m: m.update(kind="feedback"), "kind"),
        (lambda m: m.update(schema_version=1), "schema_version"),
    ],
)
def test_the_schema_rejects_broken_messages(change: Any, where: str) -> None:
    r = _runtime_result((0.3, 0.3), (Finding("effusion", 0.9, Box(1, 2, 3, 4)),))
    m = json.loads(json.dumps(result_message(r, Device("edge-a1"))))
    change(m)
    errors = list(validator().iter_errors(m))
    assert errors, f"a message with a broken {where} passed"
