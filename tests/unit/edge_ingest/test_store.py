from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge_ingest.store import IngestError, IngestStore, parse_message


def _msg(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_parse_message() -> None:
    assert parse_message("scanners/s1/d1/results", _msg(result_id="r1")) == ("r1", "result", "s1", "d1")
    assert parse_message("scanners/s1/d1/feedback", _msg(feedback_id="f1", result_id="r1")) == (
        "f1",
        "feedback",
        "s1",
        "d1",
    )
    with pytest.raises(ValueError, match="not <prefix>/<site>/<device>"):
        parse_message("scanners/s1/d1/status", _msg(result_id="r1"))
    with pytest.raises(ValueError, match="not UTF-8 JSON"):
        parse_message("scanners/s1/d1/results", b"\xff{")
    with pytest.raises(ValueError, match="no string field 'result_id'"):
        parse_message("scanners/s1/d1/results", _msg(id=3))
    with pytest.raises(ValueError, match="no string field 'feedback_id'"):
        parse_message("scanners/s1/d1/feedback", _msg(result_id="r1"))


def test_store_deduplicates_and_counts_raw_duplicates_per_client(tmp_path: Path) -> None:
    store = IngestStore(tmp_path / "ingest.db")
    t = "scanners/s1/d1/results"
    assert store.add("a", [(t, _msg(result_id="r1")), (t, _msg(result_id="r2"))]) == (2, 0, 0)
    assert store.add("b", [(t, _msg(result_id="r2")), (t, b"junk"), (t, _msg(result_id="r3"))]) == (1, 1, 1)
    counts = store.counts()
    assert (counts.stored, counts.received, counts.duplicates, counts.invalid) == (3, 5, 1, 1)
    assert counts.per_client == {
        "a": {"received": 2, "duplicates": 0, "invalid": 0},
        "b": {"received": 3, "duplicates": 1, "invalid": 1},
    }
    assert store.ids() == {"r1", "r2", "r3"}
    store.close()
    # The first copy is the one kept; a second process sees the same rows.
    with sqlite3.connect(tmp_path / "ingest.db") as conn:
        assert conn.execute("SELECT ingest_client FROM messages WHERE id='r2'").fetchone() == ("a",)


def test_store_on_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    bad = tmp_path / "ingest.db"
    bad.write_bytes(b"this is not a database, just text" * 100)
    with pytest.raises(IngestError, match=r"ingest\.db: cannot open the ingest database"):
        IngestStore(bad)


def test_add_batch_names_what_receipts_may_confirm(tmp_path: Path) -> None:
    # New and duplicate ids alike (a duplicate is a device that has not heard yet), never invalid ones.
    store = IngestStore(tmp_path / "ingest.db")
    a, b = "scanners/s1/d1/results", "scanners/s1/d2/feedback"
    assert store.add_batch("x", [(a, _msg(result_id="r1"))])[3] == [("s1", "d1", "r1")]
    new, dup, bad, held = store.add_batch(
        "x", [(a, _msg(result_id="r1")), (a, b"junk"), (b, _msg(feedback_id="f1", result_id="r1"))]
    )
    assert (new, dup, bad) == (1, 1, 1)
    assert held == [("s1", "d1", "r1"), ("s1", "d2", "f1")]
    store.close()


def _v3_and_v2() -> tuple[dict[str, object], dict[str, object]]:
    """A result message as a v3 device sent it, and the same as a v2 device sent it."""
    from edge.clip_score import ClipScore
    from edge.sync.messages import Device, result_message
    from tests.support.results import make_result

    clip = ClipScore("b_line", 2.4, 2.4, 44, 2.9, 3.0, True, False, "start")
    v4 = json.loads(json.dumps(result_message(make_result(clip_scores=(clip,)), Device("edge-a1"))))
    v3 = {k: v for k, v in v4.items() if k not in ("exposure", "positioning", "heatmap")}
    v3 = {**v3, "schema_version": 3, "result_id": f"v3-{v4['result_id']}"}
    v2 = {k: v for k, v in v3.items() if k not in ("no_model", "clip_scores")}
    # A distinct id: the v2 copy is another message, not a duplicate of the v3 one.
    return v3, {**v2, "schema_version": 2, "result_id": f"v2-{v4['result_id']}"}


def _v4_xray() -> dict[str, object]:
    """A v4 X-ray result as the runtime sends it now: exposure, positioning and a small heatmap."""
    from dataclasses import replace

    import numpy as np

    from edge.sync.messages import Device, result_message
    from edge.xray_qa import Exposure, Heatmap, PositionCheck, Positioning
    from tests.support.results import make_result

    exposure = Exposure(250.0, 500.0, -3.01, "computed", "file", "under_far", "consider repeat: x", True)
    positioning = Positioning((PositionCheck("lung_left_found", False),), ("consider repeat: y",))
    heat = Heatmap("pneumonia", np.full((7, 7), 0.5, np.float32), 0, 0, 512, 512)
    r = replace(make_result(), modality="CR", exposure=exposure, positioning=positioning, heatmap=heat)
    return json.loads(json.dumps(result_message(r, Device("edge-a1"))))


def test_old_and_new_message_versions_are_both_stored_and_unknown_ones_refused(tmp_path: Path) -> None:
    v3, v2 = _v3_and_v2()
    v4 = _v4_xray()
    assert v3["schema_version"] == 3 and v3["clip_scores"][0]["shown"] == 2.4 and "no_model" in v3
    assert "clip_scores" not in v2 and "no_model" not in v2 and "exposure" not in v3
    assert v4["schema_version"] == 4 and v4["exposure"]["band"] == "under_far"  # type: ignore[index]
    t = "scanners/s1/d1/results"
    payloads = [json.dumps(m).encode() for m in (v2, v3, v4)]
    assert parse_message(t, payloads[0])[0] == v2["result_id"]
    store = IngestStore(tmp_path / "ingest.db")
    future = json.dumps({**v4, "schema_version": 5, "result_id": "r5"}).encode()
    assert store.add("a", [*((t, p) for p in payloads), (t, future)]) == (3, 0, 1)
    with pytest.raises(ValueError, match="schema_version 5 is not one this ingest reads"):
        parse_message(t, future)
    with pytest.raises(ValueError, match="schema_version True"):
        parse_message(t, _msg(result_id="r5", schema_version=True))
    stored = dict(sqlite3.connect(tmp_path / "ingest.db").execute("SELECT id, payload FROM messages"))
    assert stored == {m["result_id"]: p for m, p in zip((v2, v3, v4), payloads)}, "kept byte for byte"
    store.close()
