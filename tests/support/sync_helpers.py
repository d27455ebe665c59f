"""Helpers shared by the sync tests: uplink config, the ingest, filled outboxes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge.config import UplinkConfig
from edge.results import new_result_id
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
