"""Status texts: the sync line, the outbox line, one age format."""

from __future__ import annotations

import time
from dataclasses import dataclass

from edge.sync.status import SyncState, format_age, outbox_text, sync_text


def _state(**kw: object) -> SyncState:
    base: dict[str, object] = dict(
        enabled=True,
        connected=True,
        protocol="5",
        queued=0,
        oldest_queued_age_s=None,
        last_success_wall=None,
        in_flight=0,
        sent_session=0,
        refused_session=0,
        reconnects=0,
        last_error=None,
    )
    base.update(kw)
    return SyncState(**base)  # type: ignore[arg-type]


def test_sync_text() -> None:
    assert sync_text(_state()) == "sync: ok, 0 queued"
    assert sync_text(_state(connected=False, queued=132, oldest_queued_age_s=250)) == (
        "sync: offline, 132 queued, oldest 4m"
    )
    assert sync_text(_state(queued=5, oldest_queued_age_s=3 * 86400)) == "sync: sending, 5 queued, oldest 3d"
    assert sync_text(_state(queued=None, connected=False)) == "sync: offline, ? queued"
    assert sync_text(_state(enabled=False)) == "sync: off"


def test_sync_text_says_what_no_network_brings_back() -> None:
    # An outbox that fails is not the network: the HUD says so, whatever the connection does.
    err = "claiming results: DatabaseError: database disk image is malformed"
    assert sync_text(_state(outbox_error=err, queued=4)) == f"sync: OUTBOX ERROR: {err}, 4 queued"
    assert sync_text(_state(connected=False, outbox_error=err, queued=None)) == (
        f"sync: OUTBOX ERROR: {err}, ? queued"
    )
    tls = "the broker does not trust our client certificate (alert: unknown CA) (dev.crt)"
    assert sync_text(_state(connected=False, tls_error=tls, queued=2)) == f"sync: TLS ERROR: {tls}, 2 queued"
    assert sync_text(_state(connected=True, tls_error=tls)) == "sync: ok, 0 queued"  # connected since
    assert sync_text(_state(failed="uplink thread failed: KeyError('x')", queued=1)) == (
        "sync: STOPPED: uplink thread failed: KeyError('x'), 1 queued"
    )


def test_status_text_with_receipts() -> None:
    assert sync_text(_state(receipts=True, awaiting_receipt=0)) == "sync: ok, 0 queued"
    assert sync_text(_state(receipts=True, awaiting_receipt=12)) == (
        "sync: confirming, 0 queued, 12 awaiting receipt"
    )
    assert sync_text(_state(receipts=True, queued=3, oldest_queued_age_s=5, awaiting_receipt=2)) == (
        "sync: sending, 3 queued, oldest 5s, 2 awaiting receipt"
    )
    # receipts off: the PUBACK is final and nothing is awaited
    assert sync_text(_state(receipts=False, awaiting_receipt=12)) == "sync: ok, 0 queued"


def test_one_age_format() -> None:
    assert [format_age(s) for s in (0, 45, 89, 250, 5399, 3 * 3600, 3 * 86400)] == [
        "0s",
        "45s",
        "89s",
        "4m",
        "90m",
        "3h",
        "3d",
    ]
    assert format_age(-3) == "0s"  # a clock that stepped back never shows a negative age


@dataclass
class _Stats:
    queued: int = 0
    oldest_queued_age_s: float | None = None
    last_sent_wall: float | None = None
    quota_state: str = "ok"
    awaiting_receipt: int = 0
    confirmed: int = 0
    damaged: str | None = None


def test_outbox_line_shows_the_queue_only_without_an_uplink() -> None:
    stats = _Stats(queued=132, oldest_queued_age_s=250, last_sent_wall=time.time() - 30)
    assert outbox_text(stats, 0) == "outbox 132 queued, oldest 4m, last sent 30s ago"
    assert outbox_text(stats, 0, with_queue=False) is None  # the sync line says it
    assert outbox_text(_Stats(quota_state="thumbnails_refused"), 0, with_queue=False) == (
        "OUTBOX NEAR QUOTA: NO THUMBNAILS"
    )


def test_outbox_alarms_always_show() -> None:
    assert outbox_text(_Stats(quota_state="full"), 7, with_queue=False) == "OUTBOX FULL: RESULTS REFUSED (7)"
    assert outbox_text(_Stats(), 2, with_queue=False) == "OUTBOX WRITE FAILED (2)"


def test_a_damaged_outbox_set_aside_shows_for_the_rest_of_the_run() -> None:
    damaged = _Stats(queued=3, damaged="/var/lib/x/outbox.sqlite3.damaged-20261122T100323Z")
    assert outbox_text(damaged, 0) == (
        "OUTBOX DAMAGED: SET ASIDE AS outbox.sqlite3.damaged-20261122T100323Z, outbox 3 queued"
    )
    assert outbox_text(damaged, 0, with_queue=False) == (
        "OUTBOX DAMAGED: SET ASIDE AS outbox.sqlite3.damaged-20261122T100323Z"
    )
    full = _Stats(quota_state="full", damaged=damaged.damaged)
    assert outbox_text(full, 1, with_queue=False) == (
        "OUTBOX DAMAGED: SET ASIDE AS outbox.sqlite3.damaged-20261122T100323Z,"
        " OUTBOX FULL: RESULTS REFUSED (1)"
    )
