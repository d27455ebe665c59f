"""The outbox under kill -9 and a simulated power cut: what put() returned for is never lost.

A writer process puts results in a loop and prints each id only after put() returned; it is
killed with SIGKILL at random moments, several times over the same database, while in some
rounds a second process marks results sent. Afterwards every printed id must be in the database,
the database must pass PRAGMA integrity_check, and no id may appear twice.

The power-cut round copies the database and its WAL while the writer runs (holding a read
transaction, so no checkpoint can rewrite the WAL under the copy) and opens the copy as a
rebooted machine would. The copy's WAL may end in a half-written frame, as after a torn write;
SQLite's recovery must discard it and keep every transaction committed before the copy began.
This proves the on-disk format recovers from a WAL cut at an arbitrary byte; it does not prove
that the disk honours fsync (a drive cache that lies loses data whatever the software does).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from edge.sync.outbox import Outbox
from tests.support.paths import REPO

WRITER = """
import sys
from pathlib import Path
from edge.sync.outbox import Outbox
from tests.support.paths import REPO
from edge.results import new_result_id
ob = Outbox(Path(sys.argv[1]), quota_bytes=1 << 30)
print("ready", flush=True)
n = 0
while True:
    n += 1
    rid = new_result_id()
    out = ob.put({"schema_version": 2, "kind": "result", "result_id": rid, "priority": n % 3,
                  "pad": "x" * (n % 4000)})
    if out.kept:
        print(rid, flush=True)
"""

SENDER = """
import sys
from pathlib import Path
from edge.sync.outbox import Outbox
from tests.support.paths import REPO
ob = Outbox(Path(sys.argv[1]))
print("ready", flush=True)
while True:
    items = ob.claim(16)
    if ob.mark_sent([i.result_id for i in items]):
        for i in items:
            print(i.result_id, flush=True)
"""


class Child:
    """A Python child whose stdout lines are collected as they come."""

    def __init__(self, code: str, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(db)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.endswith("\n"):
                break  # cut off by the kill: not a report of a finished put
            if line == "ready\n":
                self.ready.set()
            else:
                self.lines.append(line.strip())

    def ids(self) -> list[str]:
        return [x for x in list(self.lines) if _is_uuid(x)]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _wait_for(child: Child, n: int, timeout: float = 30) -> None:
    assert child.ready.wait(timeout), "child did not start"
    deadline = time.monotonic() + timeout
    while len(child.ids()) < n:
        assert child.proc.poll() is None, "child died on its own"
        assert time.monotonic() < deadline, "child made no progress"
        time.sleep(0.005)


def _check(db: Path, reported: set[str]) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT result_id, state FROM items").fetchall()
    states = dict(rows)
    assert len(states) == len(rows), "an id is stored twice"
    missing = reported - states.keys()
    assert not missing, f"{len(missing)} reported ids lost, e.g. {sorted(missing)[:3]}"
    return states


def test_kill_minus_nine_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    rng = random.Random(20261122)
    reported: set[str] = set()
    sent: set[str] = set()
    for round_no in range(6):
        writer = Child(WRITER, db)
        sender = Child(SENDER, db) if round_no % 2 else None
        _wait_for(writer, 1)
        time.sleep(rng.uniform(0.05, 0.6))
        if sender is not None:  # kill the two in either order
            first, second = (writer, sender) if rng.random() < 0.5 else (sender, writer)
            first.kill()
            time.sleep(rng.uniform(0, 0.05))
            second.kill()
            sent |= set(sender.ids())
        else:
            writer.kill()
        got = writer.ids()
        assert got, "the writer reported nothing before the kill"
        reported |= set(got)
        states = _check(db, reported)
        assert all(states[i] == "sent" for i in sent), "a mark_sent that returned was lost"
    with Outbox(db) as ob:  # and the survivor is a working outbox
        s = ob.stats()
        assert s.queued + s.sent == len(_check(db, reported)) >= len(reported)
        assert ob.put({"kind": "result", "result_id": str(uuid.uuid4()), "priority": 0}).kept


def test_power_cut_copy_keeps_every_id_reported_before_it(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    writer = Child(WRITER, db)
    try:
        for k in range(3):
            _wait_for(writer, 200 * (k + 1))
            copy_dir = tmp_path / f"cut{k}"
            copy_dir.mkdir()
            with sqlite3.connect(db, isolation_level=None) as reader:
                reader.execute("BEGIN")  # a read snapshot: the WAL cannot be restarted under us
                reader.execute("SELECT COUNT(*) FROM items").fetchone()
                before = set(writer.ids())  # printed only after put() returned, before the copy began
                shutil.copyfile(db, copy_dir / db.name)
                shutil.copyfile(f"{db}-wal", copy_dir / f"{db.name}-wal")  # still being appended to
                reader.execute("COMMIT")
            states = _check(copy_dir / db.name, before)
            assert len(states) >= len(before)
    finally:
        writer.kill()
