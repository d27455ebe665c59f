"""The ingest's database: what arrived at the broker, in SQLite, one row per result id.

Rows are keyed by ``result_id`` (``feedback_id`` for feedback): a message seen again is counted as a
raw duplicate and otherwise ignored. The file is shared safely by several ingest processes (WAL, a
busy timeout), each counting its own deliveries. A batch is one transaction: what :meth:`add_batch`
returns is committed, and only that may be named in a receipt (``edge_ingest.client``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.sync.messages import MESSAGE_VERSIONS

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,            -- result_id, or feedback_id for feedback
    kind TEXT NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_wall REAL NOT NULL,
    ingest_client TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ingest_counts (
    client_id TEXT PRIMARY KEY,
    received INTEGER NOT NULL DEFAULT 0,    -- every message delivered, duplicates included
    duplicates INTEGER NOT NULL DEFAULT 0,  -- delivered again after its id was already stored
    invalid INTEGER NOT NULL DEFAULT 0      -- not JSON, no id, or an unknown topic
);
"""


class IngestError(EdgeError):
    """The ingest database or the broker connection cannot be used."""


@dataclass(frozen=True)
class IngestCounts:
    stored: int  # distinct ids in the database
    received: int  # raw deliveries, all ingest clients
    duplicates: int
    invalid: int
    per_client: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "received": self.received,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "per_client": self.per_client,
        }


def parse_message(topic: str, payload: bytes) -> tuple[str, str, str, str]:
    """(id, kind, site, device) of a delivered message; ValueError naming what is wrong."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[3] not in ("results", "feedback"):
        raise ValueError(f"topic {topic!r} is not <prefix>/<site>/<device>/results|feedback")
    kind = "feedback" if parts[3] == "feedback" else "result"
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"payload on {topic} is not UTF-8 JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ValueError(f"payload on {topic} is not a JSON object")
    # Versions 2 to 4 are stored alike (each only adds fields); one this ingest does not know is
    # refused rather than stored as something it may misread. Without a version: kept, as before.
    version = message.get("schema_version")
    if version is not None and (isinstance(version, bool) or version not in MESSAGE_VERSIONS):
        known = ", ".join(map(str, MESSAGE_VERSIONS))
        raise ValueError(
            f"payload on {topic}: schema_version {version!r} is not one this ingest reads ({known})"
        )
    key = "feedback_id" if kind == "feedback" else "result_id"
    ident = message.get(key)
    if not isinstance(ident, str) or not ident:
        raise ValueError(f"payload on {topic} has no string field {key!r}")
    return ident, kind, parts[1], parts[2]


class IngestStore:
    """The SQLite side; safe to share between ingest processes (WAL, busy timeout)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # acked means stored
            self._conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise IngestError(f"{path}: cannot open the ingest database: {exc}") from exc
        self._lock = threading.Lock()

    def add(self, client_id: str, messages: list[tuple[str, bytes]]) -> tuple[int, int, int]:
        """Store a batch of (topic, payload) in one transaction; returns (new, duplicates, invalid)."""
        new, dup, bad, _ = self.add_batch(client_id, messages)
        return new, dup, bad

    def add_batch(
        self, client_id: str, messages: list[tuple[str, bytes]]
    ) -> tuple[int, int, int, list[tuple[str, str, str]]]:
        """As :meth:`add`, plus (site, device, id) of every valid message: what the database now
        holds (stored now or before), committed when this returns: what receipts may name."""
        now = time.time()
        new = dup = bad = 0
        held: list[tuple[str, str, str]] = []
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for topic, payload in messages:
                    try:
                        ident, kind, site, device = parse_message(topic, payload)
                    except ValueError as exc:
                        log.warning("ingest: %s", exc)
                        bad += 1
                        continue
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (ident, kind, site, device, topic, payload, now, client_id),
                    )
                    if cur.rowcount:
                        new += 1
                    else:
                        dup += 1
                    held.append((site, device, ident))
                conn.execute(
                    "INSERT INTO ingest_counts (client_id, received, duplicates, invalid) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(client_id) DO UPDATE SET received=received+excluded.received,"
                    " duplicates=duplicates+excluded.duplicates, invalid=invalid+excluded.invalid",
                    (client_id, len(messages), dup, bad),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return new, dup, bad, held

    def counts(self) -> IngestCounts:
        with self._lock:
            stored = self._conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            rows = self._conn.execute(
                "SELECT client_id, received, duplicates, invalid FROM ingest_counts ORDER BY client_id"
            ).fetchall()
        per = {r[0]: {"received": r[1], "duplicates": r[2], "invalid": r[3]} for r in rows}
        return IngestCounts(
            stored=int(stored),
            received=sum(r[1] for r in rows),
            duplicates=sum(r[2] for r in rows),
            invalid=sum(r[3] for r in rows),
            per_client=per,
        )

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT id FROM messages")}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
