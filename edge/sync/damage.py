"""A damaged outbox: found at open, moved aside intact, and read row by row for what is left.

A disk that flips or loses a page (a power cut on cheap flash, a bad sector, a stray write) leaves an
SQLite file that opens and half works: counts still come from an intact index while the table
page under a queued result raises "database disk image is malformed". Used as is, the outbox
would send nothing and say nothing. So the outbox checks itself at open (``PRAGMA quick_check``,
on a read-only connection that changes nothing), and a damaged file is renamed aside with its
``-wal`` and ``-shm`` (``outbox.sqlite3.damaged-<UTC>``, still an SQLite pair), never written again:
what it holds is read back row by row (:func:`readable_items`), skipping unreadable pages, to
count it and to send it (``edge sync --once --db <damaged file>``).
"""

from __future__ import annotations

import bisect
import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edge.errors import EdgeError

log = logging.getLogger("edge.sync.outbox")

SQLITE_MAGIC = b"SQLite format 3\x00"
_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary codes)
_CORRUPT_WORDS = ("malformed", "not a database")  # Python 3.10 has no sqlite_errorcode
_COLUMNS = (
    "id, result_id, kind, priority, created_ns, state, payload, has_thumbnail, sent_wall, confirmed_wall"
)
_CHUNK = 256
_MAX_SKIP_DOUBLINGS = 48  # past a damaged page with no index to say where rows resume


class OutboxError(EdgeError):
    """The outbox database cannot be opened or used (bad file, not SQLite, no WAL support)."""


class OutboxDamaged(OutboxError):
    """The outbox file is damaged (quick_check failed or SQLite reported corruption)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: outbox database is damaged: {problem}")
        self.path = path
        self.problem = problem


class NotAnOutbox(OutboxError):
    """The file is not an SQLite database at all: not ours to move or repair."""


def is_corruption(exc: BaseException) -> bool:
    """Whether an sqlite3 error says the file is damaged (not locked, full or unreadable)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    return any(word in str(exc) for word in _CORRUPT_WORDS)


def read_only(path: Path, timeout_s: float = 10.0) -> sqlite3.Connection:
    """A read-only connection: it never checkpoints the WAL into the file or deletes the WAL."""
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=timeout_s)


def check(path: Path, *, timeout_s: float = 10.0) -> str | None:
    """What is wrong with the outbox file at ``path`` (``quick_check``'s first lines), or None when
    it is sound, empty or absent. NotAnOutbox when it is not SQLite at all."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NotAnOutbox(f"{path}: cannot read the outbox file: {exc.strerror or exc}") from exc
    if not head:
        return None
    if head != SQLITE_MAGIC:
        raise NotAnOutbox(
            f"{path}: not an SQLite database (starts with {head[:8]!r}); move it away or set [outbox] path"
        )
    try:
        conn = read_only(path, timeout_s)
    except sqlite3.Error as exc:
        raise NotAnOutbox(f"{path}: cannot open the outbox database: {exc}") from exc
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            return f"quick_check: {exc}"
        raise NotAnOutbox(f"{path}: cannot check the outbox database: {exc}") from exc
    finally:
        conn.close()
    lines = [ln for r in rows for ln in str(r[0]).splitlines() if ln and not ln.startswith("***")]
    if lines == ["ok"]:
        return None
    more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
    return "quick_check: " + "; ".join(lines[:3]) + more


def damaged_name(path: Path, wall: float | None = None) -> Path:
    """``outbox.sqlite3.damaged-20261122T100323Z`` beside ``path`` (a free name)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if wall is None else wall))
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    return target


def move_aside(path: Path, target: Path) -> list[Path]:
    """Rename ``path`` and its ``-wal``/``-shm`` to ``target`` (+ the same suffixes): the pair stays
    an SQLite database whose WAL still belongs to it. The files that moved, database first."""
    moved = []
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if suffix and not src.exists():
            continue
        dst = Path(f"{target}{suffix}")
        try:
            src.rename(dst)
        except OSError as exc:
            raise OutboxDamaged(
                path, f"and it cannot be moved aside to {dst}: {exc.strerror or exc}"
            ) from exc
        moved.append(dst)
    return moved


def set_aside(path: Path, problem: str) -> DamagedOutbox:
    """Move the damaged outbox at ``path`` aside (with its WAL), loudly, and count what it still holds."""
    target = damaged_name(path)
    move_aside(path, target)
    log.error(
        "OUTBOX DAMAGED: %s (%s); moved aside intact to %s, a fresh outbox starts in its place",
        path, problem, target,
    )  # fmt: skip
    try:
        counts = survey(target)
    except sqlite3.Error as exc:  # unreadable past counting: say so; the fresh outbox goes on
        log.error("OUTBOX DAMAGED: %s cannot be read at all (%s)", target, exc)
        counts = Survey(incomplete=True)
    found = DamagedOutbox(target, path, problem, time.time(), counts)
    log.error(
        "OUTBOX DAMAGED: %s still holds %s; send them with: edge sync --once --db %s",
        target, found.summary(), target,
    )  # fmt: skip
    return found


@dataclass
class Survey:
    """What can still be read from a damaged outbox, by state."""

    queued: int = 0
    awaiting_receipt: int = 0  # sent (PUBACK), no receipt yet: sent again on a drain
    confirmed: int = 0
    pruned: int = 0
    unreadable: int = 0  # rows an index names whose row or payload cannot be read
    incomplete: bool = False  # some pages could not be read at all: more may be lost than counted

    @property
    def to_send(self) -> int:
        return self.queued + self.awaiting_receipt

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "to_send": self.to_send}


@dataclass(frozen=True)
class DamagedOutbox:
    """An outbox found damaged and moved aside, and what could still be read from it then."""

    path: Path  # where the damaged file is now
    original: Path  # where it was
    problem: str  # what quick_check or SQLite said
    moved_wall: float
    survey: Survey = field(default_factory=Survey)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "original": str(self.original),
            "problem": self.problem,
            "moved_wall": self.moved_wall,
            **self.survey.to_dict(),
        }

    def summary(self) -> str:
        s = self.survey
        lost = ""
        if s.unreadable or s.incomplete:
            lost = f", {s.unreadable} unreadable" + (" (more may be lost)" if s.incomplete else "")
        return (
            f"{s.to_send} results to send ({s.queued} queued, {s.awaiting_receipt} awaiting receipt),"
            f" {s.confirmed} confirmed{lost}"
        )


@dataclass(frozen=True)
class Row:
    id: int
    result_id: str
    kind: str
    priority: int
    created_ns: int
    state: str
    payload: bytes | None
    has_thumbnail: int
    sent_wall: float | None
    confirmed_wall: float | None


def _index_ids(conn: sqlite3.Connection) -> tuple[set[int], bool]:
    """Row ids as the indexes name them (each index holds every row id), each scan kept up to where
    it fails; and whether any failed. A damaged table page then still shows which rows it held."""
    ids: set[int] = set()
    failed = False
    try:
        sql = "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='items'"
        names = [r[0] for r in conn.execute(sql)]
    except sqlite3.DatabaseError:
        return ids, True
    for name in names:
        if name == "items_unconfirmed":
            continue  # partial: names only some rows
        try:
            for (rid,) in conn.execute(f'SELECT id FROM items INDEXED BY "{name}"'):
                ids.add(int(rid))
        except sqlite3.DatabaseError:
            failed = True
    return ids, failed


def _row(raw: tuple[Any, ...]) -> Row | None:
    """A row whose fields are what the schema says (a page of garbage can parse as a cell)."""
    rid, result_id, kind, prio, created, state, payload, thumb, sent, confirmed = raw
    if not (isinstance(rid, int) and isinstance(result_id, str) and kind in ("result", "feedback")):
        return None
    if state not in ("queued", "sent", "pruned") or not isinstance(prio, int) or not isinstance(created, int):
        return None
    if state != "pruned":
        try:
            message = json.loads(payload)
        except (TypeError, ValueError):
            return None
        key = "feedback_id" if kind == "feedback" else "result_id"
        if not isinstance(message, dict) or message.get(key) != result_id:
            return None
    return Row(rid, result_id, kind, prio, created, state, payload, int(thumb or 0), sent, confirmed)


def readable_items(path: Path, survey: Survey | None = None) -> Iterator[Row]:
    """Every row of ``path`` that can still be read, in row order, counted into ``survey``.

    The table is read in row-id ranges; where a range hits a damaged page, the rows the indexes
    name are read one by one until ranges work again, and a row that cannot be read (or reads as
    garbage) is counted unreadable. Read-only: the file is never written.
    """
    s = survey if survey is not None else Survey()
    conn = read_only(path)
    try:
        if not _has_items(conn):
            s.incomplete = True
            return
        known, s.incomplete = _index_ids(conn)
        candidates = sorted(known)
        seen: set[int] = set()
        pos, step, doublings = 0, 1, 0
        while True:
            got, failed = _range(conn, pos)
            for raw in got:
                pos = int(raw[0])  # the table's own row id: an integer even on a garbled page
                seen.add(pos)
                row = _count(_row(raw), s)
                if row is not None:
                    yield row
            if not failed:
                if not got:
                    break
                step, doublings = 1, 0
                continue
            # A damaged page ahead: read the next row an index names by itself, or skip ahead.
            s.incomplete = True
            i = bisect.bisect_right(candidates, pos)
            if i < len(candidates):
                pos = candidates[i]
                seen.add(pos)
                raw_one = _one(conn, pos)
                row = _count(_row(raw_one) if raw_one is not None else None, s)
                if row is not None:
                    yield row
                continue
            if doublings >= _MAX_SKIP_DOUBLINGS:
                break
            pos += step
            step, doublings = step * 2, doublings + 1
        s.unreadable += len(known - seen)  # named by an index, never reached in the table
    finally:
        conn.close()


def _has_items(conn: sqlite3.Connection) -> bool:
    try:
        sql = "SELECT 1 FROM sqlite_master WHERE type='table' AND name='items'"
        return conn.execute(sql).fetchone() is not None
    except sqlite3.DatabaseError:
        return False


def _count(row: Row | None, s: Survey) -> Row | None:
    if row is None:
        s.unreadable += 1
    elif row.state == "queued":
        s.queued += 1
    elif row.state == "pruned":
        s.pruned += 1
    elif row.confirmed_wall is None:
        s.awaiting_receipt += 1
    else:
        s.confirmed += 1
    return row


def _range(conn: sqlite3.Connection, after: int) -> tuple[list[tuple[Any, ...]], bool]:
    """Up to a chunk of rows after ``after`` straight from the table; (rows read, whether it failed)."""
    rows: list[tuple[Any, ...]] = []
    try:
        sql = f"SELECT {_COLUMNS} FROM items NOT INDEXED WHERE id > ? ORDER BY id LIMIT ?"
        cur = conn.execute(sql, (after, _CHUNK))
        while (raw := cur.fetchone()) is not None:
            rows.append(raw)
    except sqlite3.DatabaseError:
        return rows, True
    return rows, False


def _one(conn: sqlite3.Connection, rid: int) -> tuple[Any, ...] | None:
    try:
        raw = conn.execute(f"SELECT {_COLUMNS} FROM items NOT INDEXED WHERE id = ?", (rid,)).fetchone()
    except sqlite3.DatabaseError:
        return None
    return tuple(raw) if raw is not None else None


def survey(path: Path) -> Survey:
    """Count what can still be read from a damaged outbox file (reads it all; writes nothing)."""
    s = Survey()
    for _ in readable_items(path, s):
        pass
    return s
