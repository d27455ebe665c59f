"""The uplink when the outbox fails under it: it reports the error ("sync: OUTBOX ERROR: ..."), keeps
its connection and its thread, holds PUBACKs it could not commit, and carries on once the outbox
answers. The peer is the scripted MQTT broker of test_uplink; the outbox is a real one whose calls
fail (as SQLite fails on a damaged file) while ``broken`` names them."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from edge.sync.outbox import Outbox, OutboxItem, OutboxStats
from edge.sync.uplink import Uplink
from tests.support.polling import wait_for
from tests.support.sync_helpers import fill
from tests.unit.sync.test_uplink import ScriptedPeer, _config, _ids

MALFORMED = "database disk image is malformed"


class FailingOutbox:
    """A real outbox whose named calls raise SQLite's corruption error while listed in ``broken``."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.broken: set[str] = set()

    def _check(self, name: str) -> None:
        if name in self.broken:
            raise sqlite3.DatabaseError(MALFORMED)

    def claim(self, limit: int, *, exclude: Collection[str] = (), **kw: Any) -> list[OutboxItem]:
        self._check("claim")
        return self.outbox.claim(limit, exclude=exclude, **kw)

    def mark_sent(self, result_ids: Sequence[str]) -> int:
        self._check("mark_sent")
        return self.outbox.mark_sent(result_ids)

    def mark_confirmed(self, result_ids: Sequence[str]) -> int:
        self._check("mark_confirmed")
        return self.outbox.mark_confirmed(result_ids)

    def stats(self) -> OutboxStats:
        self._check("stats")
        return self.outbox.stats()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def test_a_failing_outbox_is_reported_not_fatal_and_not_blamed_on_the_network(outbox: Outbox) -> None:
    peer = ScriptedPeer()
    ids = fill(outbox, 3, priority=0)
    failing = FailingOutbox(outbox)
    failing.broken = {"claim", "stats"}
    uplink = Uplink(failing, _config(peer.port), device_id="dev-1", site="s")
    uplink.start()
    try:
        wait_for(lambda: uplink.state().outbox_error is not None, 10, "the outbox error in the state")
        wait_for(lambda: uplink.state().connected, 10, "the connection (the broker is fine)")
        state = uplink.state()
        assert state.outbox_error is not None and MALFORMED in state.outbox_error
        assert uplink.hud_text().startswith("sync: OUTBOX ERROR: ") and "offline" not in uplink.hud_text()
        assert uplink._thread is not None and uplink._thread.is_alive()
        failing.broken.clear()  # the outbox answers again (set aside and started afresh, say)
        wait_for(lambda: outbox.stats().sent == 3, 20, "the results sent once it answers")
        wait_for(lambda: uplink.state().outbox_error is None, 10, "the error cleared")
    finally:
        uplink.stop()
        peer.close()
    results = [p for t, p in peer.published if t.endswith("/results")]
    assert sorted(_ids(results)) == sorted(ids)


def test_pubacks_that_cannot_be_committed_are_held_not_lost(outbox: Outbox) -> None:
    peer = ScriptedPeer()
    ids = fill(outbox, 3, priority=0)
    failing = FailingOutbox(outbox)
    failing.broken = {"mark_sent"}
    uplink = Uplink(failing, _config(peer.port), device_id="dev-1", site="s")
    uplink.start()
    try:
        wait_for(lambda: uplink.state().outbox_error is not None, 10, "the outbox error")
        assert "marking results sent" in (uplink.state().outbox_error or "")
        assert outbox.stats().sent == 0
        failing.broken.clear()
        wait_for(lambda: outbox.stats().sent == 3, 20, "the held PUBACKs committed")
    finally:
        uplink.stop()
        peer.close()
    results = [p for t, p in peer.published if t.endswith("/results")]
    assert sorted(_ids(results)) == sorted(ids)  # each once: the PUBACKs were held, not thrown away


def test_a_thread_that_dies_says_so_and_a_drain_stops_waiting(outbox: Outbox) -> None:
    peer = ScriptedPeer()
    fill(outbox, 1)
    uplink = Uplink(outbox, _config(peer.port), device_id="dev-1", site="s")

    def bug(now: float) -> None:
        raise KeyError("a bug")

    uplink._step_once = bug  # type: ignore[method-assign]
    try:
        report = uplink.drain_once(timeout_s=60)
    finally:
        uplink.stop()
        peer.close()
    assert not report.drained and report.elapsed_s < 60
    assert uplink.hud_text().startswith("sync: STOPPED: uplink thread failed: KeyError")
