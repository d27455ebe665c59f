"""The outbox: durable puts, states, claim order, quota, feedback, several threads and handles."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.results import new_result_id
from edge.sync import damage
from edge.sync.messages import Device
from edge.sync.outbox import DEFAULT_QUOTA_BYTES, Outbox, OutboxDamaged, OutboxError


def msg(priority: int = 0, pad: int = 0, **extra: Any) -> dict[str, Any]:
    return {"schema_version": 2, "kind": "result", "result_id": new_result_id(), "priority": priority,
            "pad": "x" * pad, **extra}  # fmt: skip


def jpeg(w: int = 64, h: int = 48) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((h, w, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def age(path: Path, result_id: str, seconds: float) -> None:
    """Make an item look ``seconds`` older than it is (a backlog from before the network went down)."""
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE items SET created_ns = created_ns - ? WHERE result_id = ?",
            (int(seconds * 1e9), result_id),
        )


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    ob = Outbox(tmp_path / "outbox.sqlite3", device=Device("edge-test"))
    yield ob
    ob.close()


def test_put_is_committed_in_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path) as ob:
        m = msg(priority=1)
        out = ob.put(m)
        assert out.kept and out.status == "stored" and out.result_id == m["result_id"]
        assert ob._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        # another connection sees it at once: it is committed, not held in a transaction
        with sqlite3.connect(path) as other:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            row = other.execute(
                "SELECT state, payload FROM items WHERE result_id=?", (m["result_id"],)
            ).fetchone()
        assert row[0] == "queued"
        assert json.loads(row[1]) == {**m, "thumbnail": None}
        assert ob.put(m).status == "duplicate"
    with Outbox(path) as again:  # reopened: still there
        assert again.stats().queued == 1


def test_claim_orders_backlog_by_priority_then_age_and_reserves_room_for_live(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path) as ob:
        backlog = [msg(priority=p) for p in (0, 2, 1, 2, 0, 1)]
        for m in backlog:
            ob.put(m)
            age(path, m["result_id"], 3600)
        live = [msg(priority=0) for _ in range(3)]
        for m in live:
            ob.put(m)
        ids = [i.result_id for i in ob.claim(4, live_window_s=10, live_share=0.5)]
        # two live (newest first), then the backlog's two urgent in put order
        assert ids == [
            live[2]["result_id"],
            live[1]["result_id"],
            backlog[1]["result_id"],
            backlog[3]["result_id"],
        ]
        # no live share: pure priority order; live items are young, so they come after older equals
        order = [i.result_id for i in ob.claim(100, live_share=0)]
        expect = [backlog[i]["result_id"] for i in (1, 3, 2, 5, 0, 4)] + [m["result_id"] for m in live]
        assert order == expect
        # claim changes nothing; exclude leaves out those in flight
        assert ob.stats().queued == 9
        rest = ob.claim(100, exclude=set(order[:5]))
        want = [live[2], live[1], live[0], backlog[4]]
        assert [i.result_id for i in rest] == [m["result_id"] for m in want]
        item = rest[0]
        assert (
            item.kind == "result"
            and item.priority == 0
            and json.loads(item.payload)["result_id"] == item.result_id
        )
        assert ob.claim(0) == []


def test_a_long_backlog_does_not_starve_live_results(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path) as ob:
        for _ in range(50):
            m = msg(priority=2)
            ob.put(m)
            age(path, m["result_id"], 600)
        fresh = msg(priority=0)
        ob.put(fresh)
        got = ob.claim(10, live_share=0.2)
        assert fresh["result_id"] in [i.result_id for i in got]
        assert sum(i.priority == 2 for i in got) == 9


def test_states_sent_only_by_mark_sent_and_pruned_after_retention(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", retention_s=100) as ob:
        ms = [msg() for _ in range(4)]
        for m in ms:
            ob.put(m)
        assert ob.stats().last_sent_wall is None
        ids = [m["result_id"] for m in ms]
        assert ob.mark_sent([*ids[:2], "not-in-the-outbox"]) == 2
        assert ob.mark_sent(ids[:1]) == 0  # already sent: nothing changes
        s = ob.stats()
        assert (s.queued, s.sent, s.pruned) == (2, 2, 0) and s.last_sent_wall is not None
        assert [i.result_id for i in ob.claim(10, live_share=0)] == ids[2:]
        assert (s.confirmed, s.awaiting_receipt) == (0, 2)
        assert ob.prune(now=s.last_sent_wall + 150) == 0  # sent without a receipt: kept
        assert ob.mark_confirmed([*ids[:2], "not-in-the-outbox"]) == 2
        assert ob.mark_confirmed(ids[:2]) == 0  # already confirmed
        s = ob.stats()
        assert (s.queued, s.sent, s.confirmed, s.awaiting_receipt) == (2, 2, 2, 0)
        assert s.last_confirmed_wall is not None and s.last_confirmed_wall >= s.last_sent_wall
        assert ob.prune(now=s.last_confirmed_wall + 50) == 0  # within the retention
        assert ob.prune(now=s.last_confirmed_wall + 150) == 2
        s = ob.stats()
        assert (s.queued, s.sent, s.pruned) == (2, 0, 2)  # queued results are never pruned
        rows = ob._conn.execute("SELECT payload FROM items WHERE state='pruned'").fetchall()
        assert rows == [(None,), (None,)]
        assert ob.put(ms[0]).status == "duplicate"  # the tombstone still knows the id
        ob.prune(now=s.last_sent_wall + 250)  # twice the retention: tombstones go
        assert ob.stats().pruned == 0 and ob.stats().queued == 2


def test_receipts_off_prunes_on_the_puback_alone(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", retention_s=100) as ob:
        ids = [ob.put(msg()).result_id for _ in range(3)]
        ob.mark_sent(ids[:2])
        wall = ob.stats().last_sent_wall
        assert wall is not None
        assert ob.prune(now=wall + 150) == 0
        assert ob.prune(now=wall + 150, unconfirmed_too=True) == 2
        assert ob.stats().queued == 1


def test_a_receipt_for_a_queued_item_confirms_it(box: Outbox) -> None:
    # The PUBACK was lost with the connection, the message was not: the receipt says the ingest has it.
    rid = box.put(msg()).result_id
    assert box.mark_confirmed([rid]) == 1
    s = box.stats()
    assert (s.queued, s.sent, s.confirmed, s.awaiting_receipt) == (0, 1, 1, 0)
    assert box.mark_sent([rid]) == 0  # a late PUBACK changes nothing
    assert box.claim(10, resend_after_s=0.0) == []


def test_sent_without_a_receipt_is_claimed_again_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path) as ob:
        ids = [ob.put(msg(priority=p)).result_id for p in (0, 0, 2)]
        waiting = ob.put(msg()).result_id
        ob.mark_sent(ids)
        assert [i.result_id for i in ob.claim(10, resend_after_s=60)] == [waiting]  # too young to resend
        assert [i.result_id for i in ob.claim(10)] == [waiting]  # receipts off: sent is final
        with sqlite3.connect(path) as db:  # the PUBACKs were 61 s ago
            db.execute("UPDATE items SET sent_wall = sent_wall - 61 WHERE state='sent'")
        ob.mark_confirmed(ids[1:2])
        again = [i.result_id for i in ob.claim(10, resend_after_s=60, live_share=0)]
        # unconfirmed re-sends first (by priority, then age), then the queue; confirmed never
        assert again == [ids[2], ids[0], waiting]
        assert [i.result_id for i in ob.claim(10, resend_after_s=60, exclude={ids[2]})] == [ids[0], waiting]
        assert len(ob.claim(2, resend_after_s=60)) == 2
        ob.mark_sent([ids[0]])  # re-sent and acked again: its receipt is awaited afresh, not counted twice
        assert [i.result_id for i in ob.claim(10, resend_after_s=60, live_share=0)] == [ids[2], waiting]
        assert ob.stats().sent == 3


def test_a_format_1_outbox_is_migrated_with_its_sent_items_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with sqlite3.connect(path) as db:  # the layout of format 1, as an earlier release left it
        db.executescript(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, result_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
            " priority INTEGER NOT NULL, created_ns INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'queued'"
            " CHECK (state IN ('queued', 'sent', 'pruned')), payload BLOB,"
            " has_thumbnail INTEGER NOT NULL DEFAULT 0, sent_wall REAL);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value);"
            "INSERT INTO meta VALUES ('format', 1);"
            "INSERT INTO items VALUES (1, 'a', 'result', 0, 1, 'sent', x'7b7d', 0, 100.0);"
            "INSERT INTO items VALUES (2, 'b', 'result', 0, 2, 'queued', x'7b7d', 0, NULL);"
        )
    with Outbox(path) as ob:
        s = ob.stats()
        assert (s.queued, s.sent, s.confirmed, s.awaiting_receipt) == (1, 1, 1, 0)
        assert [i.result_id for i in ob.claim(10, resend_after_s=0)] == ["b"]
    with Outbox(path) as ob:  # opening again changes nothing
        assert ob.stats().confirmed == 1


def test_mark_sent_many_ids_in_chunks(box: Outbox) -> None:
    ids = [box.put(msg()).result_id for _ in range(1200)]
    assert box.mark_sent(ids) == 1200
    assert box.stats().sent == 1200


def _pages_in_use(path: Path) -> int:
    with sqlite3.connect(path) as db:
        pages, free, size = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in
                             ("page_count", "freelist_count", "page_size"))  # fmt: skip
    return int((pages - free) * size)


def test_bytes_used_is_what_is_stored_and_the_wal_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path, quota_bytes=4 * 1024**2) as ob:
        start = ob.stats().bytes_used
        for _ in range(200):
            ob.put(msg(pad=10_000))
        s = ob.stats()
        assert start + 200 * 10_000 <= s.bytes_used <= start + 200 * 13_000
        assert s.bytes_used == _pages_in_use(path)  # what is stored, wherever its pages are now
        # The WAL is scratch space, not counted: checkpointed every 1/16 of the quota (256 KiB
        # here) and cut back to that, so it stays small next to the quota.
        assert s.wal_bytes == Path(f"{path}-wal").stat().st_size
        assert 0 < s.wal_bytes <= 256 * 1024 + 64 * 1024
        ob._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert ob.stats().bytes_used == path.stat().st_size == s.bytes_used
        assert ob.stats().wal_bytes == 0
        # what was sent and pruned goes back to the disk
        ob.mark_sent([i.result_id for i in ob.claim(1000)])
        ob.prune(now=ob.stats().last_sent_wall + 10 * 86400, unconfirmed_too=True)
        after = ob.stats().bytes_used
        assert after < s.bytes_used - 150 * 10_000
        assert after == path.stat().st_size  # freed pages went back (incremental vacuum)


def test_the_quota_counts_results_not_the_wal(tmp_path: Path) -> None:
    # The fault: with the WAL file counted, a 4 MiB quota refused nearly every small result once a
    # few hundred single-result commits had grown the WAL (each commits several whole pages).
    with Outbox(tmp_path / "ob.sqlite3", quota_bytes=4 * 1024**2) as ob:
        outs = [ob.put(msg(priority=i % 3, pad=1_000)) for i in range(1500)]
        s = ob.stats()
    assert [o.status for o in outs].count("stored") == 1500
    assert s.refused == 0 and s.quota_state == "ok" and s.bytes_used < 4 * 1024**2 * 0.8


def test_the_quota_is_recorded_in_the_file_for_readers(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path) as ob:  # a reader (no quota) of a new file: none known, none made up
        assert ob.quota_bytes is None and ob.stats().quota_state == "unknown"
        assert ob.stats().quota_bytes is None
    with Outbox(path, quota_bytes=4 * 1024**2) as ob:  # the writer records what it enforces
        ob.put(msg())
    with Outbox(path) as ob:
        s = ob.stats()
        assert s.quota_bytes == 4 * 1024**2 and s.quota_state == "ok"
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key='quota_bytes'")  # an outbox from before it was kept
    with Outbox(path) as ob:
        assert ob.stats().quota_bytes is None
        ob.put(msg())  # a writer without a quota enforces the default, and says so in the file
        assert ob.stats().quota_bytes == DEFAULT_QUOTA_BYTES
    with Outbox(path) as ob:
        assert ob.stats().quota_bytes == DEFAULT_QUOTA_BYTES


def test_quota_refuses_thumbnails_first_then_results_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ob.sqlite3"
    caplog.set_level(logging.INFO, logger="edge.sync.outbox")
    with Outbox(path, quota_bytes=400_000, thumbnail_fraction=0.5) as ob:
        thumb = jpeg()
        kept: list[str] = []
        statuses: list[str] = []
        for _ in range(400):
            out = ob.put(msg(pad=2_000), thumbnail=thumb)
            statuses.append(out.status)
            if out.kept:
                kept.append(out.result_id)
        first_without = statuses.index("stored_without_thumbnail")
        first_refused = statuses.index("refused")
        assert 0 < first_without < first_refused
        assert "stored" not in statuses[first_without:]  # once past the share, thumbnails stay off
        s = ob.stats()
        assert s.quota_state == "full" and s.refused == statuses.count("refused") > 0
        assert s.thumbnails_refused == statuses.count("stored_without_thumbnail")
        assert s.queued == len(kept)  # nothing kept was dropped to make room
        assert s.bytes_used <= 400_000 + 64 * 1024  # over by at most a page write or two
        stored = {i.result_id: json.loads(i.payload) for i in ob.claim(10_000)}
        assert set(stored) == set(kept)
        assert all(stored[k]["thumbnail"] is not None for k in kept[:first_without])
        assert all(stored[k]["thumbnail"] is None for k in kept[first_without:])
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert any("OUTBOX FULL" in r.getMessage() for r in errors)
        assert any("OUTBOX REFUSED" in r.getMessage() for r in errors)
        # once results are acknowledged and pruned, there is room again
        ob.mark_sent(kept)
        ob.mark_confirmed(kept)
        ob.prune(now=ob.stats().last_sent_wall + 30 * 86400)
        assert ob.put(msg()).status == "stored"
        assert ob.stats().quota_state == "ok"


class _FailingConn:
    """A connection whose writes fail as on a full or broken disk."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)


def test_a_failing_disk_refuses_and_does_not_raise(box: Outbox) -> None:
    kept = box.put(msg())
    real = box._conn
    box._conn = _FailingConn(real)  # type: ignore[assignment]
    out = box.put(msg())
    box._conn = real
    assert not out.kept and out.status == "refused" and "disk is full" in (out.reason or "")
    assert box.stats().refused == 1
    assert [i.result_id for i in box.claim(10)] == [kept.result_id]  # rolled back, the rest intact


def test_thumbnail_goes_into_the_payload(box: Outbox) -> None:
    t = jpeg(80, 60)
    out = box.put(msg(), thumbnail=t)
    assert out.status == "stored"
    payload = json.loads(box.claim(1)[0].payload)
    assert (payload["thumbnail"]["width"], payload["thumbnail"]["height"]) == (80, 60)
    with pytest.raises(ValueError, match="not a JPEG"):
        box.put(msg(), thumbnail=b"GIF89a....")


def test_feedback_is_queued_as_urgent_as_its_result(box: Outbox) -> None:
    urgent = box.put(msg(priority=2)).result_id
    fb = box.put_feedback(urgent, "confirm", operator="op-3")
    assert fb.kept
    items = {i.kind: i for i in box.claim(10)}
    assert items["feedback"].priority == 2 and items["feedback"].result_id == fb.result_id
    body = json.loads(items["feedback"].payload)
    assert (
        body["result_id"] == urgent and body["verdict"] == "confirm" and body["device"]["id"] == "edge-test"
    )
    assert box.put_feedback(new_result_id(), "reject").kept  # a result sent and gone long ago
    with pytest.raises(ValueError, match="verdict"):
        box.put_feedback(urgent, "perhaps")


def test_feedback_needs_a_device(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3") as ob, pytest.raises(OutboxError, match="device"):
        ob.put_feedback(new_result_id(), "confirm")


def test_scrub_is_applied_before_storing(tmp_path: Path) -> None:
    def scrub(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "source_id": "redacted"}

    with Outbox(tmp_path / "ob.sqlite3", scrub=scrub) as ob:
        ob.put(msg(source_id="dicom:///data/DOE_JOHN/1.dcm"))
        assert json.loads(ob.claim(1)[0].payload)["source_id"] == "redacted"


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"kind": "result", "result_id": "nope"}, "not a UUID"),
        ({"kind": "result"}, "must be a UUID string"),
        ({"kind": "alarm", "result_id": new_result_id()}, "'kind'"),
        ({"kind": "result", "result_id": new_result_id(), "priority": "high"}, "priority"),
        ({"kind": "result", "result_id": new_result_id(), "score": float("nan")}, "not plain JSON"),
    ],
)
def test_bad_results_are_named(box: Outbox, bad: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        box.put(bad)


def test_a_file_that_is_not_an_outbox_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(OutboxError, match=str(path)):
        Outbox(path)
    with pytest.raises(ValueError, match="quota"):
        Outbox(tmp_path / "x.sqlite3", quota_bytes=0)


def test_many_threads_and_a_second_handle(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path) as writer, Outbox(path) as sender:  # two connections, as two processes have
        got: list[list[str]] = [[] for _ in range(4)]

        def work(k: int) -> None:
            got[k] = [writer.put(msg()).result_id for _ in range(100)]

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        marked = 0
        while any(t.is_alive() for t in threads):
            marked += sender.mark_sent([i.result_id for i in sender.claim(20)])
        for t in threads:
            t.join()
        marked += sender.mark_sent([i.result_id for i in sender.claim(1000)])
        flat = [i for part in got for i in part]
        assert len(set(flat)) == 400 and marked == 400
        s = writer.stats()
        assert (s.queued, s.sent) == (0, 400)
        assert writer.integrity_check() == "ok"


class _CorruptConn(_FailingConn):
    """A connection whose every statement reports corruption, as SQLite does on a damaged page."""

    def execute(self, sql: str, *args: Any) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")


def test_reported_corruption_that_quick_check_does_not_confirm_is_an_error_not_a_move(box: Outbox) -> None:
    kept = box.put(msg())
    real = box._conn
    box._conn = _CorruptConn(real)  # type: ignore[assignment]
    out = box.put(msg())
    assert not out.kept and "quick_check finds it sound" in (out.reason or "")
    with pytest.raises(OutboxError, match="quick_check finds it sound"):
        box.claim(10)
    box._conn = real
    assert box.recovered_from is None and box.path.exists()
    assert [i.result_id for i in box.claim(10)] == [kept.result_id]


def test_a_damaged_file_is_left_in_place_for_a_reader_that_asks(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path) as ob:
        for _ in range(300):
            ob.put(msg(pad=500))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(data))
    with pytest.raises(OutboxDamaged, match=r"ob\.sqlite3: outbox database is damaged: quick_check: "):
        Outbox(path, on_damage="raise")
    assert path.read_bytes() == bytes(data) and not list(tmp_path.glob("*.damaged-*"))


def test_adopt_copies_what_is_left_to_send_once(tmp_path: Path) -> None:
    source = tmp_path / "old.sqlite3"
    with Outbox(source) as old:
        ids = [old.put(msg(priority=i % 3)).result_id for i in range(6)]
        old.mark_sent(ids[:4])
        old.mark_confirmed(ids[:2])  # 0, 1 confirmed; 2, 3 awaiting a receipt; 4, 5 queued
    with Outbox(tmp_path / "copy.sqlite3") as copy:
        assert copy.adopt(damage.readable_items(source)) == 4
        assert copy.adopt(damage.readable_items(source)) == 0  # again: nothing new
        got = copy.claim(10, live_share=0)
        assert {i.result_id for i in got} == set(ids[2:])  # the unconfirmed ones go again at once
        assert copy.stats().queued == 4
