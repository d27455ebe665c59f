# Over 400 lines: one class over one SQLite file; its transactions share the kept/sent/confirmed invariants.
# Its file layout and migration are outbox_layout's, the items and counts it hands out outbox_items'.
"""The durable outbox: every result the runtime keeps, on disk, until the broker has it.

SQLite in WAL mode with ``synchronous=FULL``: :meth:`Outbox.put` returns only after its
transaction is committed and the WAL fsynced, so a result counts as kept exactly when ``put``
says so, and a kill -9 or a power cut at any later moment cannot lose it (SQLite's WAL recovery
replays every committed frame on the next open).

States: ``queued`` -> ``sent`` (only after the broker's PUBACK: the uplink calls
:meth:`Outbox.mark_sent`) -> *confirmed* (``sent`` with ``confirmed_wall`` set, once the cloud's
ingest has sent a receipt naming the id: :meth:`Outbox.mark_confirmed`) -> ``pruned``
(``retention_s`` after confirmation the payload is dropped; the id stays as a tombstone, so
putting the same id again is a no-op, until twice the retention). A PUBACK only says the broker
took the message into its memory; a receipt says the ingest committed it. A sent result with no
receipt after ``resend_after_s`` is claimable again (see :meth:`Outbox.claim`). Where the cloud
sends no receipts, ``prune(unconfirmed_too=True)`` treats the PUBACK as final.

Disk quota, in bytes of what the outbox stores (its database pages in use, the free list left
out; the WAL is a bounded scratch area, checkpointed every ``quota/16`` bytes or 4 MiB, whichever is
less, and reported apart as ``wal_bytes``): past ``thumbnail_fraction`` of it new results are
stored without their thumbnail; at the quota new results are refused. A refusal is loud (ERROR in
the log, a counter, ``quota_state`` for the HUD) and never deletes a kept result: only results the
broker acknowledged are ever pruned. The quota a writer used is kept in the file (``meta``), so a
reader opened without one (``edge sync --status --db F``) reports that one, or none.

A damaged file (``PRAGMA quick_check`` at open, or SQLite reporting corruption later) is moved aside
intact and a fresh outbox started in its place (``edge.sync.damage``): :attr:`Outbox.recovered_from`
says where it went and what can still be read from it.

Safe from several threads (one connection behind a lock) and from several processes (WAL and a
busy timeout: ``edge sync --once`` may mark results sent while ``edge run`` puts new ones).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from edge.results import PRIORITY_FINDING
from edge.sync import damage
from edge.sync.damage import DamagedOutbox, NotAnOutbox, OutboxDamaged, OutboxError
from edge.sync.jpeg import jpeg_size
from edge.sync.messages import Device, Thumbnail, feedback_message
from edge.sync.outbox_items import OutboxItem, OutboxStats, PutOutcome, QuotaState, check_id, encode
from edge.sync.outbox_layout import FORMAT_VERSION, ensure_layout, in_lists

log = logging.getLogger(__name__)

DEFAULT_QUOTA_BYTES = 2 * 1024**3  # what a writer opened without a quota enforces (and records)
_REFUSAL_LOG_EVERY_S = 10.0

__all__ = [
    "DamagedOutbox",
    "Outbox",
    "OutboxDamaged",
    "OutboxError",
    "OutboxItem",
    "OutboxStats",
    "PutOutcome",
]

OnDamage = Literal["move_aside", "raise"]
_MAX_WAL_PAGES = 1000  # SQLite's default checkpoint threshold (4 MiB of 4 KiB pages)
_MIN_WAL_PAGES = 64
_T = TypeVar("_T")


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        quota_bytes: int | None = None,
        thumbnail_fraction: float = 0.8,
        retention_s: float = 7 * 86400,
        device: Device | None = None,
        scrub: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        busy_timeout_s: float = 10.0,
        on_damage: OnDamage = "move_aside",
    ) -> None:
        """``quota_bytes`` None: the quota recorded in the file (a reader's view), else the default
        when putting. ``on_damage="raise"``: a damaged file raises :class:`OutboxDamaged` and stays
        where it is (``edge sync --status``), instead of being moved aside."""
        if quota_bytes is not None and quota_bytes <= 0:
            raise ValueError(f"quota_bytes must be positive, got {quota_bytes}")
        if not 0 < thumbnail_fraction <= 1:
            raise ValueError(f"thumbnail_fraction must be in (0, 1], got {thumbnail_fraction}")
        if retention_s <= 0:
            raise ValueError(f"retention_s must be positive, got {retention_s}")
        self.path = Path(path)
        self.quota_bytes = None if quota_bytes is None else int(quota_bytes)
        self.on_damage = on_damage
        self.recovered_from: DamagedOutbox | None = None  # the damaged file this handle moved aside
        self._busy_timeout_s = busy_timeout_s
        self.thumbnail_fraction = float(thumbnail_fraction)
        self.retention_s = float(retention_s)
        self.device = device
        self.scrub = scrub
        self._lock = threading.Lock()
        self._refused = 0
        self._thumbs_refused = 0
        self._last_refusal_log = -1e18
        self._refused_since_log = 0
        self._last_state: str = "ok"
        self._full_at: int | None = None  # bytes stored when a result last did not fit
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"{self.path}: cannot create the outbox folder: {exc}") from exc
        try:
            problem = damage.check(self.path, timeout_s=busy_timeout_s)
        except NotAnOutbox as exc:
            raise OutboxError(str(exc)) from exc
        if problem is not None:
            self._set_aside(problem)
        self._unopened: str | None = None  # set when the outbox could not be opened again
        self._conn = self._open(busy_timeout_s)
        self._inode = os.stat(self.path).st_ino
        self._settle_quota()

    # -- opening ---------------------------------------------------------------------------
    def _open(self, busy_timeout_s: float) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox database: {exc}") from exc
        try:
            # auto_vacuum only takes effect on a new, empty database: pruned space goes back to disk.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); is it on NFS?")
            conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit: kept means kept
            # A bounded WAL: checkpointed (and cut back) every 1/16 of the quota, at most 4 MiB.
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            quota = self.quota_bytes or DEFAULT_QUOTA_BYTES
            wal_pages = max(_MIN_WAL_PAGES, min(_MAX_WAL_PAGES, quota // 16 // page_size))
            conn.execute(f"PRAGMA wal_autocheckpoint={wal_pages}")
            conn.execute(f"PRAGMA journal_size_limit={wal_pages * page_size}")
            found = ensure_layout(conn)
            if found != FORMAT_VERSION:
                raise OutboxError(f"{self.path}: outbox format {found} is not the supported {FORMAT_VERSION}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise OutboxError(f"{self.path}: not a usable outbox database: {exc}") from exc
        except OutboxError:
            conn.close()
            raise
        return conn

    def _record_quota(self, quota: int) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('quota_bytes', ?)", (quota,))
        self.quota_bytes = quota

    def _settle_quota(self) -> None:
        """Record the quota this writer enforces in the file; a reader without one takes it from there."""
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key='quota_bytes'").fetchone()
            if self.quota_bytes is None:
                self.quota_bytes = None if row is None else int(row[0])
            elif row is None or int(row[0]) != self.quota_bytes:
                self._record_quota(self.quota_bytes)
            if self.recovered_from is not None:
                with self._write() as conn:
                    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('recovered_from', ?)",
                                 (json.dumps(self.recovered_from.to_dict()),))  # fmt: skip
        except sqlite3.Error as exc:
            self._conn.close()
            raise OutboxError(f"{self.path}: cannot record the outbox quota: {exc}") from exc

    # -- damage ----------------------------------------------------------------------------
    def _set_aside(self, problem: str) -> None:
        if self.on_damage == "raise":
            raise OutboxDamaged(self.path, problem)
        self.recovered_from = damage.set_aside(self.path, problem)

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """SQLite reported corruption during the run: if quick_check agrees, set the file aside and
        continue on a fresh one (called under the lock). Raises when that cannot be done."""
        try:
            moved_by_other = os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            moved_by_other = True
        if moved_by_other:  # another handle (another Outbox on this file) moved it: follow to the new one
            self._conn.close()
            self._reopen()
            return
        try:
            problem = damage.check(self.path, timeout_s=self._busy_timeout_s)
        except NotAnOutbox as gone:  # our own database lost its header: damaged, not a stranger
            problem = str(gone)
        if problem is None:
            raise OutboxError(f"{self.path}: SQLite reported {exc}, yet quick_check finds it sound") from exc
        # A read-only connection holds the file while ours closes, so closing checkpoints nothing
        # into the damaged file and leaves its WAL in place: it moves aside as it was.
        hold = damage.read_only(self.path, self._busy_timeout_s)
        try:
            try:
                hold.execute("PRAGMA schema_version").fetchone()  # a read takes the shared lock
            except sqlite3.DatabaseError:
                log.debug("outbox: the damaged file's header cannot be read either", exc_info=True)
            self._conn.close()
            try:
                self._set_aside(f"{exc} during use; {problem}")
            except OutboxError:  # cannot be moved (or the reader wants it left): back on it as it is
                self._reopen()
                raise
        finally:
            hold.close()
        self._reopen()

    def _reopen(self) -> None:
        """A connection to whatever is at the path now (closed before; say why while it cannot)."""
        try:
            self._conn = self._open(self._busy_timeout_s)
            self._inode = os.stat(self.path).st_ino
            self._settle_quota()
        except (OutboxError, OSError) as exc:
            self._unopened = f"{self.path}: cannot open the outbox again: {exc}"
            raise OutboxError(self._unopened) from exc
        self._unopened = None

    def _recovering(self, op: Callable[[], _T]) -> _T:
        """``op()`` (under the lock); after corruption, once more on the fresh outbox."""
        if self._unopened is not None:
            self._reopen()  # a disk that refused it may take it now
        try:
            return op()
        except sqlite3.DatabaseError as exc:
            if not damage.is_corruption(exc):
                raise
            self._recover(exc)
        return op()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (the write lock up front, so no deadlock between processes)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite rolls back by itself after some errors (full, I/O)
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.debug("outbox: rollback failed", exc_info=True)  # the error above is the one
            raise
        conn.execute("COMMIT")

    # -- quota -----------------------------------------------------------------------------
    def _bytes_used(self) -> int:
        """What the outbox stores: its pages in use (the free list left out, pages still only in
        the WAL counted). Not the WAL file: its size is where the last checkpoint left it, a few
        commits' scratch space that the checkpoint reuses, not results kept."""
        conn = self._conn
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * int(conn.execute("PRAGMA page_size").fetchone()[0])

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    @property
    def enforced_quota(self) -> int:
        """The quota puts obey: the one given or recorded, else the default."""
        return self.quota_bytes if self.quota_bytes is not None else DEFAULT_QUOTA_BYTES

    def _quota_state(self, used: int) -> QuotaState:
        if self.quota_bytes is None:
            return "unknown"
        if used >= self.quota_bytes or (self._full_at is not None and used >= self._full_at):
            return "full"  # at the quota, or too near it for the last result to fit
        if used >= self.quota_bytes * self.thumbnail_fraction:
            return "thumbnails_refused"
        return "ok"

    def _note_state(self, state: str) -> None:
        if state == self._last_state:
            return
        if state == "full":
            log.error("OUTBOX FULL (%s, quota %d bytes): refusing new results", self.path, self.quota_bytes)
        elif state == "thumbnails_refused":
            log.warning("outbox near its quota (%s): new results are stored without thumbnails", self.path)
        else:
            log.info("outbox back under its quota (%s)", self.path)
        self._last_state = state

    def _refuse(self, result_id: str, reason: str) -> PutOutcome:
        self._refused += 1
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= _REFUSAL_LOG_EVERY_S:
            log.error(
                "OUTBOX REFUSED %d result(s) (latest %s): %s", self._refused_since_log, result_id, reason
            )
            self._last_refusal_log = now
            self._refused_since_log = 0
        return PutOutcome(result_id, "refused", reason)

    # -- putting ---------------------------------------------------------------------------
    def put(self, result: dict[str, Any], *, thumbnail: bytes | None = None) -> PutOutcome:
        """Keep one message (a result, or a feedback message from :meth:`put_feedback`).

        Durable when it returns a kept outcome: committed and fsynced. ``thumbnail`` is a JPEG
        that is already de-identified; it goes into the payload as base64 unless the outbox is
        past its thumbnail share of the quota. Refused (never raised) when the quota is reached
        or the disk fails, so a live scan keeps running and shows the alarm.
        """
        if not isinstance(result, dict):
            raise TypeError(f"put takes a result dict, got {type(result).__name__}")
        kind = result.get("kind", "result")
        if kind not in ("result", "feedback"):
            raise ValueError(f"result field 'kind' must be 'result' or 'feedback', got {kind!r}")
        key = "feedback_id" if kind == "feedback" else "result_id"
        item_id = check_id(result.get(key), f"{kind} field {key!r}")
        priority = result.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"result field 'priority' must be an integer, got {priority!r}")
        message = self.scrub(dict(result)) if self.scrub is not None else dict(result)
        thumb_field = message.pop("thumbnail", None)  # one already in the message obeys the quota too
        if thumbnail is not None:
            width, height = jpeg_size(thumbnail)  # raises ValueError naming the byte at fault
            thumb_field = Thumbnail(bytes(thumbnail), width, height).to_dict()
        if kind == "result":
            message["thumbnail"] = None
        bare = encode(message)
        with self._lock:
            try:
                return self._recovering(
                    lambda: self._put_locked(item_id, kind, priority, message, bare, thumb_field)
                )
            except (sqlite3.Error, OutboxError) as exc:  # damaged and cannot be set aside, say
                return self._refuse(item_id, f"outbox write failed: {exc}")

    def _put_locked(
        self,
        item_id: str,
        kind: str,
        priority: int,
        message: dict[str, Any],
        bare: bytes,
        thumb_field: dict[str, Any] | None,
    ) -> PutOutcome:
        try:
            if self.quota_bytes is None:  # a writer without a quota: the default, recorded as used
                self._record_quota(DEFAULT_QUOTA_BYTES)
            quota = self.enforced_quota
            used = self._bytes_used()
            if self._full_at is not None and used < self._full_at:
                self._full_at = None  # room came back (pruned)
            if used + len(bare) > quota:
                self._full_at = used
            self._note_state(self._quota_state(used))
            if used + len(bare) > quota:
                return self._refuse(item_id, f"outbox quota reached ({used} of {quota} bytes stored)")
            payload, status = bare, "stored"
            if thumb_field is not None:
                with_thumb = encode({**message, "thumbnail": thumb_field})
                if used + len(with_thumb) > quota * self.thumbnail_fraction:
                    self._thumbs_refused += 1
                    status = "stored_without_thumbnail"
                else:
                    payload = with_thumb
            with self._write() as conn:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO items (result_id, kind, priority, created_ns, payload,"
                    " has_thumbnail) VALUES (?, ?, ?, ?, ?, ?)",
                    (item_id, kind, priority, time.time_ns(), payload, int(payload is not bare)),
                )
            if cur.rowcount == 0:
                return PutOutcome(item_id, "duplicate", "already in the outbox")
            return PutOutcome(item_id, status)  # type: ignore[arg-type]
        except sqlite3.Error as exc:  # disk full, I/O error, locked past the busy timeout
            if damage.is_corruption(exc):
                raise  # set aside by _recovering, and the put tried again on a fresh outbox
            return self._refuse(item_id, f"outbox write failed: {exc}")

    def put_feedback(self, result_id: str, verdict: str, *, operator: str | None = None) -> PutOutcome:
        """Queue the operator's "confirm" / "reject" of a result, as urgent as the result itself."""
        if self.device is None:
            raise OutboxError("put_feedback needs the device: open the Outbox with device=Device(...)")
        message = feedback_message(check_id(result_id, "feedback result_id"), verdict, self.device,
                                   operator=operator)  # fmt: skip
        sql = "SELECT priority FROM items WHERE result_id=?"
        with self._lock:
            row = self._recovering(lambda: self._conn.execute(sql, (result_id,)).fetchone())
        message["priority"] = int(row[0]) if row is not None else PRIORITY_FINDING
        return self.put(message)

    def adopt(self, rows: Iterable[damage.Row]) -> int:
        """Copy in what a damaged outbox still has to send (``damage.readable_items``): queued rows,
        and sent ones without a receipt, queued again so they go at once (the ingest de-duplicates).
        Ids already here stay as they are; the quota is not applied (they were kept already).
        Returns how many were added."""
        added = 0
        with self._lock, self._write() as conn:
            for r in rows:
                if r.state == "pruned" or r.confirmed_wall is not None or r.payload is None:
                    continue
                cur = conn.execute(
                    "INSERT OR IGNORE INTO items (result_id, kind, priority, created_ns, payload,"
                    " has_thumbnail) VALUES (?, ?, ?, ?, ?, ?)",
                    (r.result_id, r.kind, r.priority, r.created_ns, r.payload, r.has_thumbnail),
                )
                added += cur.rowcount
        return added

    # -- sending ---------------------------------------------------------------------------
    def claim(
        self,
        limit: int,
        *,
        exclude: Collection[str] = (),
        live_window_s: float = 10.0,
        live_share: float = 0.5,
        resend_after_s: float | None = None,
    ) -> list[OutboxItem]:
        """Up to ``limit`` queued items to send next, not in ``exclude`` (those in flight).

        Up to ``live_share`` of ``limit`` goes to items put within the last ``live_window_s``
        (newest first), so a long backlog never starves live results; the rest is the backlog,
        highest priority first, then oldest first. Changes nothing: an item stays queued until
        :meth:`mark_sent`, so a crash between claim and PUBACK only means sending it again.

        With ``resend_after_s`` (receipts on), sent items whose receipt has not come within that
        long after their last PUBACK are claimed first of all: the broker acknowledged them, yet
        the ingest never said it has them (the broker died with them in memory, or the receipt
        was lost); the ingest de-duplicates the re-send and issues the receipt again.
        """
        if limit <= 0:
            return []
        excluded = set(exclude)
        live_n = min(limit, int(limit * max(0.0, min(1.0, live_share))))
        since_ns = time.time_ns() - int(live_window_s * 1e9)
        with self._lock:
            return self._recovering(
                lambda: self._claim_locked(limit, excluded, live_n, since_ns, resend_after_s)
            )

    def _claim_locked(
        self, limit: int, excluded: set[str], live_n: int, since_ns: int, resend_after_s: float | None
    ) -> list[OutboxItem]:
        cols = "result_id, kind, priority, created_ns, payload"
        conn = self._conn
        picked: dict[str, OutboxItem] = {}
        if resend_after_s is not None:
            rows = conn.execute(
                f"SELECT {cols} FROM items WHERE state='sent' AND confirmed_wall IS NULL"
                " AND sent_wall < ? ORDER BY priority DESC, created_ns LIMIT ?",
                (time.time() - resend_after_s, limit + len(excluded)),
            ).fetchall()
            self._take(rows, excluded, picked, limit)
            live_n = min(live_n, limit - len(picked))
        if live_n:
            rows = conn.execute(
                f"SELECT {cols} FROM items WHERE state='queued' AND created_ns >= ?"
                " ORDER BY created_ns DESC LIMIT ?",
                (since_ns, live_n + len(excluded)),
            ).fetchall()
            self._take(rows, excluded | picked.keys(), picked, len(picked) + live_n)
        rows = conn.execute(
            f"SELECT {cols} FROM items WHERE state='queued' ORDER BY priority DESC, created_ns LIMIT ?",
            (limit + len(excluded) + len(picked),),
        ).fetchall()
        self._take(rows, excluded | picked.keys(), picked, limit)
        return list(picked.values())

    @staticmethod
    def _take(rows: list[Any], skip: Collection[str], into: dict[str, OutboxItem], upto: int) -> None:
        for rid, kind, prio, created, payload in rows:
            if len(into) >= upto:
                return
            if rid not in skip:
                into[rid] = OutboxItem(rid, kind, int(prio), int(created), bytes(payload))

    def mark_sent(self, result_ids: Sequence[str]) -> int:
        """queued -> sent for these ids (call only after the broker's PUBACK); committed.

        Returns how many went from queued to sent. A re-sent item that is still unconfirmed gets
        its ``sent_wall`` renewed (its receipt is awaited afresh) without counting again.
        """
        ids = list(dict.fromkeys(result_ids))
        if not ids:
            return 0
        with self._lock:
            return self._recovering(lambda: self._mark_sent_locked(ids))

    def _mark_sent_locked(self, ids: list[str]) -> int:
        now = time.time()
        changed = 0
        with self._write() as conn:
            for part, marks in in_lists(ids):
                conn.execute(
                    "UPDATE items SET sent_wall=?"
                    f" WHERE state='sent' AND confirmed_wall IS NULL AND result_id IN ({marks})",
                    (now, *part),
                )
                cur = conn.execute(
                    "UPDATE items SET state='sent', sent_wall=?"
                    f" WHERE state='queued' AND result_id IN ({marks})",
                    (now, *part),
                )
                changed += cur.rowcount
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_sent_wall', ?)", (now,))
        return changed

    def mark_confirmed(self, result_ids: Sequence[str]) -> int:
        """The ingest's receipt names these ids: it has committed them. Returns how many changed.

        A queued item named in a receipt (its PUBACK was lost, the message was not) becomes sent
        and confirmed at once. Ids that are unknown, already confirmed or pruned change nothing.
        """
        ids = list(dict.fromkeys(result_ids))
        if not ids:
            return 0
        with self._lock:
            return self._recovering(lambda: self._mark_confirmed_locked(ids))

    def _mark_confirmed_locked(self, ids: list[str]) -> int:
        now = time.time()
        changed = 0
        with self._write() as conn:
            for part, marks in in_lists(ids):
                cur = conn.execute(
                    "UPDATE items SET state='sent', sent_wall=COALESCE(sent_wall, ?), confirmed_wall=?"
                    " WHERE state IN ('queued', 'sent') AND confirmed_wall IS NULL"
                    f" AND result_id IN ({marks})",
                    (now, now, *part),
                )
                changed += cur.rowcount
            if changed:
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_confirmed_wall', ?)", (now,)
                )
        return changed

    def prune(self, now: float | None = None, *, unconfirmed_too: bool = False) -> int:
        """Confirmed for longer than the retention -> pruned (payload dropped); returns how many.

        A sent item without a receipt is kept (it may still have to be sent again), unless
        ``unconfirmed_too`` (receipts off: the PUBACK is final), when the retention runs from
        the PUBACK. Tombstones (pruned ids) go after twice the retention. Freed pages go back to
        the disk.
        """
        now = time.time() if now is None else now
        cutoff = now - self.retention_s
        done = "confirmed_wall < ?"
        if unconfirmed_too:
            done += " OR (confirmed_wall IS NULL AND sent_wall < ?)"
        args = (cutoff, cutoff) if unconfirmed_too else (cutoff,)

        def prune_locked() -> int:
            with self._write() as conn:
                pruned = conn.execute(
                    f"UPDATE items SET state='pruned', payload=NULL WHERE state='sent' AND ({done})", args
                ).rowcount
                conn.execute(
                    "DELETE FROM items WHERE state='pruned' AND sent_wall < ?", (now - 2 * self.retention_s,)
                )
            # executescript steps it to the end; execute() would free one page and stop there.
            self._conn.executescript("PRAGMA incremental_vacuum;")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL back to nothing
            return int(pruned)

        with self._lock:
            return self._recovering(prune_locked)

    # -- state -----------------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        with self._lock:
            return self._recovering(self._stats_locked)

    def _stats_locked(self) -> OutboxStats:
        conn = self._conn
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())
        awaiting = conn.execute(
            "SELECT COUNT(*) FROM items WHERE state='sent' AND confirmed_wall IS NULL"
        ).fetchone()[0]
        oldest = conn.execute("SELECT MIN(created_ns) FROM items WHERE state='queued'").fetchone()[0]
        last = conn.execute("SELECT value FROM meta WHERE key='last_sent_wall'").fetchone()
        last_conf = conn.execute("SELECT value FROM meta WHERE key='last_confirmed_wall'").fetchone()
        used = self._bytes_used()
        return OutboxStats(
            queued=int(counts.get("queued", 0)),
            sent=int(counts.get("sent", 0)),
            pruned=int(counts.get("pruned", 0)),
            refused=self._refused,
            thumbnails_refused=self._thumbs_refused,
            oldest_queued_age_s=None if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9),
            last_sent_wall=None if last is None else float(last[0]),
            bytes_used=used,
            quota_bytes=self.quota_bytes,
            quota_state=self._quota_state(used),
            confirmed=int(counts.get("sent", 0)) - int(awaiting),
            awaiting_receipt=int(awaiting),
            last_confirmed_wall=None if last_conf is None else float(last_conf[0]),
            wal_bytes=self._wal_bytes(),
            damaged=None if self.recovered_from is None else str(self.recovered_from.path),
        )

    def recorded_damage(self) -> dict[str, Any] | None:
        """The damaged outbox last moved aside from this path, as recorded then (any handle, any run)."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='recovered_from'").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def integrity_check(self) -> str:
        """SQLite's full integrity check: "ok" or the problems it found."""
        with self._lock:
            rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)
