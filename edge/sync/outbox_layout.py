"""The outbox's file layout: its tables and indexes, the format version kept in ``meta``, the
migration from format 1, and SQL helpers. ``Outbox`` opens a connection, sets its pragmas, then
:func:`ensure_layout`."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("edge.sync.outbox")  # the outbox's own log: a migration is its event

FORMAT_VERSION = 2  # of the database layout, kept in the meta table (2: confirmed_wall; 1 is migrated)
IN_CHUNK = 500  # ids per IN (...) list: under SQLite's smallest variable limit (999)


def in_lists(ids: list[str]) -> Iterator[tuple[list[str], str]]:
    """(ids, "?,?,...") per chunk, for ``... IN ({marks})`` with the ids as parameters."""
    for i in range(0, len(ids), IN_CHUNK):
        part = ids[i : i + IN_CHUNK]
        yield part, ",".join("?" * len(part))


SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    result_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('result', 'feedback')),
    priority INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'pruned')),
    payload BLOB,
    has_thumbnail INTEGER NOT NULL DEFAULT 0,
    sent_wall REAL,
    confirmed_wall REAL  -- the ingest's receipt arrived (NULL: not yet, or receipts are off)
);
CREATE INDEX IF NOT EXISTS items_backlog ON items (state, priority DESC, created_ns);
CREATE INDEX IF NOT EXISTS items_age ON items (state, created_ns);
CREATE INDEX IF NOT EXISTS items_sent ON items (state, sent_wall);
CREATE INDEX IF NOT EXISTS items_unconfirmed ON items (sent_wall)
    WHERE state='sent' AND confirmed_wall IS NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
"""


def ensure_layout(conn: sqlite3.Connection) -> int:
    """Create the tables of a new file, migrate a format-1 file; the file's format (the
    supported ``FORMAT_VERSION`` unless it is a newer or unknown one)."""
    row = _format_of(conn)
    if row is not None and int(row[0]) == 1:
        _migrate_v1(conn)
    conn.executescript(SCHEMA)
    row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (FORMAT_VERSION,))
        return FORMAT_VERSION
    return int(row[0])


def _format_of(conn: sqlite3.Connection) -> tuple[Any] | None:
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if has_meta is None:
        return None
    return conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Format 1 had no receipts: add ``confirmed_wall``. What v1 marked sent is taken as confirmed
    (its PUBACK was final then), so an upgrade neither re-sends nor keeps it past its retention."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE items ADD COLUMN confirmed_wall REAL")
        conn.execute("UPDATE items SET confirmed_wall=sent_wall WHERE state IN ('sent', 'pruned')")
        conn.execute("UPDATE meta SET value=? WHERE key='format'", (FORMAT_VERSION,))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    log.info("outbox: migrated from format 1 to %d (receipts)", FORMAT_VERSION)
