"""Faults during a drain: the broker and the runtime killed -9, nothing lost, duplicates only raw.

The short version of ``tools/sync/soak.py`` (which runs 10,000 results through 20 + 20 kills).
Zero lost relies on receipts: a result the broker acknowledged and then lost with its memory has
no receipt, and is sent again after the runtime's ``confirm_timeout_s`` (5 s here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.sync.broker import find_mosquitto, find_mosquitto_passwd
from tools.sync.soak import run_soak


@pytest.mark.skipif(
    find_mosquitto() is None or find_mosquitto_passwd() is None,
    reason="mosquitto is not installed (scripts/setup.sh --test installs it)",
)
def test_broker_and_runtime_kill9_during_drain_lose_nothing(tmp_path: Path) -> None:
    report = run_soak(tmp_path, results=2_000, broker_kills=3, runtime_kills=3, window=8, timeout_s=300)
    print(report.to_dict())
    # Every fault really landed during the drain (not after it), then the drain finished.
    assert report.broker_kills == 3 and report.runtime_kills == 3
    assert report.runtime_starts >= 4
    assert report.outbox_queued == 0 and report.outbox_sent == 2_000
    # Delivered end to end: the ingest's receipts confirmed every result (a PUBACK alone is not enough).
    assert report.outbox_confirmed == 2_000 and report.outbox_awaiting_receipt == 0
    assert report.lost == 0 and report.unexpected == 0
    assert report.ingest_stored == 2_000  # zero duplicates after de-duplication: one row per id
    assert report.raw_received == report.ingest_stored + report.raw_duplicates
