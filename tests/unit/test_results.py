"""Result types: UUIDv7 ids, JSON-safe dicts, box normalisation and mm conversion."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from edge.results import (
    PRIORITY_FINDING,
    PRIORITY_NONE,
    PRIORITY_URGENT,
    Box,
    Finding,
    Quality,
    StageTimes,
    new_result_id,
    priority_for,
    uuid7_time_ms,
)
from tests.support.results import make_result


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
    assert back["schema_version"] == 4 and back["kind"] == "result" and back["no_model"] is False
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
