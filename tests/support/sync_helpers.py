"""Helpers shared by the sync tests: uplink config, the ingest, filled outboxes."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from edge.config import UplinkConfig
from edge.results import new_result_id
from edge.sync import damage
from edge.sync.credentials import read_password, tls_context
from edge.sync.outbox import Outbox
from edge_ingest import BrokerLogin, Ingest, IngestStore
from tools.sync.broker import INGEST_USER, MosquittoBroker, find_mosquitto, find_mosquitto_passwd

SITE = "site-1"


@contextmanager
def mosquitto_broker(workdir: Path, devices: list[str]) -> Iterator[MosquittoBroker]:
    """A real broker (TLS, passwords, ACLs) for a test outside the integration folder; skips the
    test where mosquitto is not installed."""
    if find_mosquitto() is None or find_mosquitto_passwd() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh --test installs it)")
    with MosquittoBroker(workdir, devices, autosave_every_change=False) as broker:
        yield broker


def uplink_config(broker: MosquittoBroker, device: str, **overrides: object) -> UplinkConfig:
    f = broker.client_files(device)
    values: dict[str, object] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": broker.port,
        "tls": {"ca": f.ca, "cert": f.cert, "key": f.key},
        "password_file": f.password_file,
        "backoff_min_s": 0.05,
        "backoff_max_s": 0.5,
        "confirm_timeout_s": 5.0,
        **overrides,
    }
    return UplinkConfig.model_validate(values)


def ingest_login(broker: MosquittoBroker) -> BrokerLogin:
    f = broker.client_files(INGEST_USER)
    return BrokerLogin(
        "127.0.0.1",
        broker.port,
        INGEST_USER,
        read_password(f.password_file),
        tls_context(f.ca, f.cert, f.key),
    )


def start_ingest(
    broker: MosquittoBroker, db: Path, client_id: str = "ingest-1"
) -> tuple[IngestStore, Ingest]:
    store = IngestStore(db)
    ingest = Ingest(store, ingest_login(broker), group="tests", client_id=client_id, backoff_min_s=0.05)
    ingest.start()
    assert ingest.subscribed.wait(10), ingest.last_error
    return store, ingest


def fill(outbox: Outbox, n: int, priority: int | None = None) -> list[str]:
    """``n`` minimal results kept in the outbox (priorities 0, 1, 2 in turn unless given); their ids."""
    ids = []
    for i in range(n):
        rid = new_result_id()
        prio = i % 3 if priority is None else priority
        assert outbox.put({"result_id": rid, "priority": prio, "seq": i}).kept
        ids.append(rid)
    return ids


DAMAGE_QUOTA = 64 * 1024**2
PAGE = 4096
DAMAGE_N = 500  # 300 queued, 100 sent awaiting a receipt, 100 confirmed


def padded_message(i: int) -> dict[str, object]:
    """A result message of about 1 kB (several to a page)."""
    return {"kind": "result", "result_id": new_result_id(), "priority": i % 3, "seq": i, "pad": "x" * 700}


def outbox_in_three_states(path: Path) -> dict[str, bytes]:
    """An outbox of DAMAGE_N results in all three states, closed (all in the main file); id -> payload."""
    with Outbox(path, quota_bytes=DAMAGE_QUOTA) as ob:
        ids = [ob.put(padded_message(i)).result_id for i in range(DAMAGE_N)]
        ob.mark_sent(ids[:200])
        ob.mark_confirmed(ids[:100])
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA page_size").fetchone()[0] == PAGE
        return dict(db.execute("SELECT result_id, payload FROM items").fetchall())


def _table_unreadable(path: Path) -> bool:
    try:
        with closing(damage.read_only(path)) as db:
            db.execute("SELECT payload FROM items NOT INDEXED").fetchall()
    except sqlite3.DatabaseError:
        return True
    return False


def damage_mid_file(path: Path) -> bytes:
    """Overwrite 4 kB in the middle of the file with random bytes, in place as a failing disk does,
    on the page nearest the middle that holds results (a full read of them then fails); the
    damaged file's bytes."""
    data = path.read_bytes()
    pages = len(data) // PAGE
    junk = random.Random(11).randbytes(PAGE)
    for page in sorted(range(2, pages), key=lambda p: abs(p - pages // 2)):
        off = page * PAGE
        with path.open("r+b") as f:
            f.seek(off)
            f.write(junk)
        if _table_unreadable(path):
            return path.read_bytes()
        with path.open("r+b") as f:
            f.seek(off)
            f.write(data[off : off + PAGE])
    raise AssertionError("no page of results to damage")


def readable_to_send(path: Path) -> set[str]:
    """The readable results of a damaged outbox that still have to go (queued, or awaiting receipt)."""
    rows = damage.readable_items(path)
    return {r.result_id for r in rows if r.state == "queued" or (r.state == "sent" and not r.confirmed_wall)}
