"""Wire messages (schema v2): results and feedback wrapped for the outbox and the broker."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import numpy as np
import pytest

from edge.results import PRIORITY_URGENT, Box, Finding, new_result_id
from edge.sync.messages import Device, Thumbnail, feedback_message, result_message
from tests.support.results import make_result, runtime_result, validator


def test_result_message_wraps_the_result() -> None:
    r = make_result(priority=PRIORITY_URGENT)
    thumb = Thumbnail(b"\xff\xd8jpeg", 64, 48)
    m = result_message(r, Device("edge-a1", "ward 3"), exam_pseudonym="exam-1", thumbnail=thumb)
    assert m["kind"] == "result" and m["schema_version"] == 4
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


@pytest.mark.parametrize("spacing", [(0.3, 0.25), None])
def test_runtime_results_match_the_json_schema(spacing: tuple[float, float] | None) -> None:
    findings = (
        Finding("effusion", np.float32(0.9), Box(10, 20, 200, 300), False, np.int64(1)),
        Finding("b_line", 0.3, Box(-5, 0, 700, 40), True, 2),
        Finding("whole_image", 0.7),
    )
    r = runtime_result(spacing, findings)
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
    r = runtime_result((0.3, 0.3), (Finding("effusion", 0.9, Box(1, 2, 3, 4)),))
    m = json.loads(json.dumps(result_message(r, Device("edge-a1"))))
    change(m)
    errors = list(validator().iter_errors(m))
    assert errors, f"a message with a broken {where} passed"


def test_a_v3_result_with_its_clip_score_validates_and_survives_the_scrubber() -> None:
    from dataclasses import replace

    from edge.clip_score import RESET_REASONS, ClipScore
    from edge.deid.payload import scrub_payload
    from tests.support.results import SCHEMA_PATH

    score = ClipScore("b_line", 3.04, 3.0, 44, 2.93, 3.0, True, True, "scene_change")
    r = replace(runtime_result((0.3, 0.3), (Finding("b_line", 0.9, Box(1, 2, 3, 4)),)), clip_scores=(score,))
    m = json.loads(json.dumps(result_message(r, Device("edge-a1")), allow_nan=False))
    validator().validate(m)
    assert m["schema_version"] == 4 and m["no_model"] is False
    assert m["clip_scores"] == [
        {"label": "b_line", "mean": 3.04, "shown": 3.0, "frames": 44, "span_s": 2.93, "window_s": 3.0,
         "ready": True, "pattern": True, "reset": "scene_change"}
    ]  # fmt: skip
    clean = scrub_payload(m, key=b"k" * 32)
    assert clean["clip_scores"] == m["clip_scores"] and clean["no_model"] is False
    schema = json.loads(SCHEMA_PATH.read_text())
    assert tuple(schema["$defs"]["clip_score"]["properties"]["reset"]["enum"]) == RESET_REASONS
    old = {k: v for k, v in m.items() if k not in ("clip_scores", "no_model")}
    validator().validate({**old, "schema_version": 2})  # what a v2 device sent still validates
    bad = json.loads(json.dumps(m))
    bad["clip_scores"][0]["reset"] = "because"
    assert list(validator().iter_errors(bad)), "an unknown reset reason is refused"
