"""The MQTT payload scrubber on real result and feedback messages from ``edge.results``."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from edge.deid.errors import DeidError
from edge.deid.payload import exam_pseudonym, scrub_payload, source_pseudonym
from edge.results import Box, Finding, ModelInfo, Quality, Result, StageTimes, new_result_id
from edge.sync.messages import Device, Thumbnail, feedback_message, result_message
from tests.support.results import validator

KEY = bytes(range(32))
MARKERS = ["MRK90001", "MRK90002", "MRK90003", "MRK90004", "MRK90005", "MRK90006", "MRK90007"]


def _result(source_id: str) -> Result:
    t = time.monotonic_ns()
    return Result(
        result_id=new_result_id(),
        frame_seq=7,
        frame_wall_time=time.time(),
        source_id=source_id,
        modality="US",
        quality=Quality("diagnostic", 0.9, True, {"diagnostic": 0.9, "shadow": 0.1}),
        findings=(
            Finding("b_line", 0.8, Box(1, 2, 30, 40)),
            Finding("effusion", 0.3, None, needs_review=True),
        ),
        models=(ModelInfo("us-quality", "1.0.0", "a" * 64, "int8", "onnxruntime", "CPUExecutionProvider"),),
        times=StageTimes(t, t + 1000, t + 2000, t + 3000, t + 4000),
        image_size=(640, 480),
        pixel_spacing_mm=(0.2, 0.2),
    )


def _leaky_message() -> dict[str, Any]:
    """A real v2 message whose source names the patient, plus fields a careless producer might add."""
    msg = result_message(
        _result(f"dicom:///data/DOE^JOHN_{MARKERS[0]}/IM0001.dcm"),
        Device("edge-01", "ward-3"),
        exam_pseudonym=f"{MARKERS[1]}-1.2.840.99",  # not a pseudonym: an accession-like raw value
        thumbnail=Thumbnail(b"\xff\xd8\xff\xd9", 80, 60),
    )
    msg["patient_name"] = f"DOE^{MARKERS[2]}"
    msg["meta"] = {"PatientID": MARKERS[3], "file": f"/data/{MARKERS[4]}.dcm", "BitsStored": 8}
    msg["findings"][0]["note"] = f"free text {MARKERS[5]}"
    msg["quality"]["comment"] = MARKERS[6]
    return msg


def test_no_marker_survives_and_the_message_still_validates() -> None:
    msg = _leaky_message()
    assert all(m in json.dumps(msg) for m in MARKERS)
    clean = scrub_payload(msg, key=KEY)
    text = json.dumps(clean, allow_nan=False)
    assert [m for m in MARKERS if m in text] == []
    assert "DOE" not in text and "/data" not in text
    validator().validate(clean)


def test_what_is_kept_is_kept_exactly() -> None:
    msg = _leaky_message()
    clean = scrub_payload(msg, key=KEY)
    for k in ("result_id", "frame_seq", "frame_time", "modality", "quality", "findings", "models", "times"):
        expected = msg[k]
        if k == "quality":
            expected = {kk: vv for kk, vv in expected.items() if kk != "comment"}
        if k == "findings":
            expected = [{kk: vv for kk, vv in f.items() if kk != "note"} for f in expected]
        assert clean[k] == expected, k
    assert clean["thumbnail"] == msg["thumbnail"] and clean["device"] == msg["device"]
    assert "patient_name" not in clean and "meta" not in clean


def test_source_and_exam_become_stable_pseudonyms() -> None:
    a = scrub_payload(_leaky_message(), key=KEY)
    b = scrub_payload(_leaky_message(), key=KEY)
    assert a["source_id"] == b["source_id"] == source_pseudonym(KEY, _leaky_message()["source_id"])
    assert a["source_id"].startswith("dicom:src-") and len(a["source_id"]) == len("dicom:src-") + 20
    assert a["exam_pseudonym"] == b["exam_pseudonym"] and a["exam_pseudonym"].startswith("ex-")
    assert scrub_payload(_leaky_message(), key=bytes(32))["source_id"] != a["source_id"]


def test_a_real_exam_pseudonym_passes_untouched() -> None:
    msg = _leaky_message()
    msg["exam_pseudonym"] = exam_pseudonym(KEY, "PID", "1.2.3")
    assert scrub_payload(msg, key=KEY)["exam_pseudonym"] == msg["exam_pseudonym"]
    msg["exam_pseudonym"] = None
    assert scrub_payload(msg, key=KEY)["exam_pseudonym"] is None


def test_result_to_dict_without_envelope_is_scrubbed_too() -> None:
    body = _result("probe+emu://?preset=lung").to_dict()
    clean = scrub_payload(body, key=KEY)
    assert clean["source_id"].startswith("probe+emu:src-")
    assert set(clean) == set(body)


def test_feedback_keeps_its_fields_and_drops_extras() -> None:
    fb = feedback_message(new_result_id(), "confirm", Device("edge-01"), operator="sono-7")
    fb["patient_id"] = MARKERS[0]
    clean = scrub_payload(fb, key=KEY)
    assert MARKERS[0] not in json.dumps(clean)
    assert {k: v for k, v in fb.items() if k != "patient_id"} == clean


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("result_id", "DOE^JOHN", "payload field result_id: not of the expected form"),
        ("frame_seq", "7", "payload field frame_seq: expected an integer"),
        ("modality", "MR", "payload field modality: expected one of"),
        ("models", [{"name": "x", "sha256": "nothex"}], r"payload field models\[0\].sha256"),
    ],
)
def test_wrong_shapes_are_refused_by_field(field: str, value: Any, message: str) -> None:
    msg = _leaky_message()
    msg[field] = value
    with pytest.raises(DeidError, match=message):
        scrub_payload(msg, key=KEY)


def test_free_text_in_a_label_is_refused_without_echoing_it() -> None:
    msg = _leaky_message()
    msg["findings"][0]["label"] = "DOE^JOHN said\nhello"
    with pytest.raises(DeidError) as err:
        scrub_payload(msg, key=KEY)
    assert "findings[0].label" in str(err.value) and "DOE" not in str(err.value)


def test_not_a_dict_is_refused() -> None:
    with pytest.raises(DeidError, match="expected a JSON object"):
        scrub_payload([], key=KEY)  # type: ignore[arg-type]
