"""Fixtures for the integration tests: a real mosquitto with TLS, passwords and ACLs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.sync.broker import MosquittoBroker, find_mosquitto, find_mosquitto_passwd

SYNC_DEVICES = ["dev-a", "dev-b"]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh broker on a free loopback port (devices dev-a, dev-b and the ingest user)."""
    if find_mosquitto() is None or find_mosquitto_passwd() is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh --test installs it)")
    # mosquitto's default persistence (no save per change): these tests do not kill the broker
    # mid-drain, and a save per change rewrites the whole queue each time (slow on a loaded box).
    broker = MosquittoBroker(tmp_path / "broker", SYNC_DEVICES, autosave_every_change=False)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
