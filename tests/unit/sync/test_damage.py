"""Finding, setting aside and reading a damaged outbox file (edge.sync.damage)."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from edge.sync import damage
from edge.sync.outbox import Outbox
from tests.support.sync_helpers import fill

PAGE = 4096


def _filled(path: Path, n: int = 200) -> list[str]:
    with Outbox(path) as ob:
        ids = fill(ob, n)
        ob.mark_sent(ids[:50])
        ob.mark_confirmed(ids[:20])
    return ids


def _spoil_a_results_page(path: Path) -> None:
    """Spoil the page nearest the middle of the file that a full read of the results needs (a leaf:
    rows under a damaged interior page cannot be reached at all, and are only counted)."""
    data = path.read_bytes()
    pages = len(data) // PAGE
    for page in sorted(range(2, pages), key=lambda p: abs(p - pages // 2)):
        with path.open("r+b") as f:
            f.seek(page * PAGE)
            f.write(b"\xff" * PAGE)
        try:
            with closing(damage.read_only(path)) as db:
                db.execute("SELECT payload FROM items NOT INDEXED").fetchall()
        except sqlite3.DatabaseError:
            return
        path.write_bytes(data)
    raise AssertionError("no results page found")


def test_corruption_is_told_from_other_sqlite_errors() -> None:
    assert damage.is_corruption(sqlite3.DatabaseError("database disk image is malformed"))
    assert damage.is_corruption(sqlite3.DatabaseError("file is not a database"))
    assert not damage.is_corruption(sqlite3.OperationalError("database is locked"))
    assert not damage.is_corruption(sqlite3.OperationalError("database or disk is full"))
    assert not damage.is_corruption(ValueError("malformed"))


def test_check(tmp_path: Path) -> None:
    assert damage.check(tmp_path / "absent.sqlite3") is None
    (tmp_path / "empty.sqlite3").write_bytes(b"")
    assert damage.check(tmp_path / "empty.sqlite3") is None
    (tmp_path / "notes.txt").write_text("not a database at all\n")
    with pytest.raises(damage.NotAnOutbox, match=r"notes\.txt: not an SQLite database"):
        damage.check(tmp_path / "notes.txt")
    path = tmp_path / "ob.sqlite3"
    _filled(path)
    assert damage.check(path) is None
    before = path.read_bytes()
    _spoil_a_results_page(path)
    problem = damage.check(path)
    assert problem is not None and problem.startswith("quick_check: ")
    spoiled = path.read_bytes()
    assert spoiled != before and damage.check(path) == problem  # read-only: checking changes nothing
    assert path.read_bytes() == spoiled


def test_damaged_names_are_utc_stamped_and_free(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = damage.damaged_name(path, wall=0.0)
    assert first.name == "outbox.sqlite3.damaged-19700101T000000Z"
    first.write_bytes(b"x")
    assert damage.damaged_name(path, wall=0.0).name == "outbox.sqlite3.damaged-19700101T000000Z-2"


def test_move_aside_keeps_the_wal_with_its_database(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    for suffix, data in (("", b"db"), ("-wal", b"wal"), ("-shm", b"shm")):
        Path(f"{path}{suffix}").write_bytes(data)
    target = tmp_path / "outbox.sqlite3.damaged-x"
    assert damage.move_aside(path, target) == [target, Path(f"{target}-wal"), Path(f"{target}-shm")]
    assert [Path(f"{target}{s}").read_bytes() for s in ("", "-wal", "-shm")] == [b"db", b"wal", b"shm"]
    assert not any(Path(f"{path}{s}").exists() for s in ("", "-wal", "-shm"))
    with pytest.raises(damage.OutboxDamaged, match=r"cannot be moved aside to .*nowhere"):
        damage.move_aside(target, tmp_path / "nowhere" / "x")


def test_readable_items_skip_the_damaged_page_and_count_it(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    ids = _filled(path)
    _spoil_a_results_page(path)
    counts = damage.Survey()
    rows = list(damage.readable_items(path, counts))
    assert 0 < counts.unreadable < len(ids) and counts.incomplete
    assert len(rows) + counts.unreadable == len(ids)
    assert {r.result_id for r in rows} < set(ids)
    assert counts.to_send + counts.confirmed == len(rows)
    assert counts.confirmed <= 20 and counts.awaiting_receipt <= 30
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert damage.survey(path) == counts


def test_a_row_that_reads_as_garbage_is_unreadable() -> None:
    good = (1, "01a2", "result", 0, 5, "queued", b'{"result_id":"01a2"}', 0, None, None)
    assert damage._row(good) is not None
    assert damage._row((*good[:6], b'{"result_id":"other"}', 0, None, None)) is None  # not its payload
    assert damage._row((*good[:6], b"\x00garbage", 0, None, None)) is None
    assert damage._row((1, "01a2", "result", 0, 5, "lost", None, 0, None, None)) is None  # no such state
    assert damage._row((1, "01a2", "result", 0, 5, "pruned", None, 0, 1.0, 1.0)) is not None


def test_the_report_of_a_damaged_outbox() -> None:
    found = damage.DamagedOutbox(
        Path("/d/outbox.sqlite3.damaged-19700101T000000Z"), Path("/d/outbox.sqlite3"), "quick_check: x", 0.0,
        damage.Survey(queued=5, awaiting_receipt=2, confirmed=9, unreadable=3, incomplete=True),
    )  # fmt: skip
    assert found.summary() == (
        "7 results to send (5 queued, 2 awaiting receipt), 9 confirmed, 3 unreadable (more may be lost)"
    )
    d = found.to_dict()
    assert d["path"].endswith("damaged-19700101T000000Z") and d["to_send"] == 7 and d["unreadable"] == 3
    assert re.fullmatch(r"quick_check: x", d["problem"])
