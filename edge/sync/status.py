"""What the device says about its results leaving it: the uplink's state, the HUD lines and ages.

One age format for every line the HUD and ``edge sync --status`` show ("45s", "4m", "3h", "2d"),
and one place that decides which line carries the queue: the sync line when an uplink runs, the
outbox line only when there is none, so the HUD never shows the same queue twice.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.sync.contract import StatsLike


def format_age(seconds: float) -> str:
    """A short age for a status line: "45s", "4m", "3h", "2d"."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


@dataclass(frozen=True)
class SyncState:
    """What the HUD, the run report and ``edge sync --status`` say about the uplink."""

    enabled: bool
    connected: bool
    protocol: str | None
    queued: int | None
    oldest_queued_age_s: float | None
    last_success_wall: float | None
    in_flight: int
    sent_session: int
    refused_session: int
    reconnects: int
    last_error: str | None
    receipts: bool = False  # whether a result counts as delivered only on the ingest's receipt
    awaiting_receipt: int | None = None  # sent (PUBACK) and not yet confirmed by a receipt
    confirmed: int | None = None  # sent and confirmed (in the outbox, not yet pruned)
    confirmed_session: int = 0  # confirmed by receipts during this session
    outbox_error: str | None = None  # the outbox fails: nothing is claimed or marked sent meanwhile
    tls_error: str | None = None  # the last connect failed in TLS: what failed
    failed: str | None = None  # the uplink thread ended on an unexpected error: nothing more is sent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync_text(state: SyncState) -> str:
    """One HUD line: "sync: ok, 0 queued", "sync: offline, 132 queued, oldest 4m"; what no network
    brings back in capitals, with its reason ("sync: OUTBOX ERROR: ...", "sync: TLS ERROR: ...")."""
    if not state.enabled:
        return "sync: off"
    queued = "? queued" if state.queued is None else f"{state.queued} queued"
    awaiting = state.awaiting_receipt if state.receipts else None
    if state.failed:
        word = f"STOPPED: {state.failed}"
    elif state.outbox_error:
        word = f"OUTBOX ERROR: {state.outbox_error}"
    elif not state.connected and state.tls_error:
        word = f"TLS ERROR: {state.tls_error}"
    elif not state.connected:
        word = "offline"
    elif state.queued or state.in_flight:
        word = "sending"
    elif awaiting:
        word = "confirming"
    else:
        word = "ok"
    text = f"sync: {word}, {queued}"
    if state.queued and state.oldest_queued_age_s is not None:
        text += f", oldest {format_age(state.oldest_queued_age_s)}"
    if awaiting:
        text += f", {awaiting} awaiting receipt"
    if state.refused_session:
        text += f", {state.refused_session} refused"
    return text


class QueueStats(StatsLike, Protocol):
    """The outbox figures the outbox line needs (``edge.sync.outbox.OutboxStats`` has them)."""

    @property
    def quota_state(self) -> str: ...
    @property
    def damaged(self) -> str | None: ...


def outbox_text(stats: QueueStats, refused: int, *, with_queue: bool = True) -> str | None:
    """The outbox's HUD line: the alarms in capitals (a damaged outbox set aside during this run,
    the quota); the queue only ``with_queue`` (no uplink: the sync line shows the queue when there
    is one)."""
    parts = []
    if stats.damaged:  # the fresh outbox keeps what comes now; the damaged one waits to be drained
        parts.append(f"OUTBOX DAMAGED: SET ASIDE AS {Path(stats.damaged).name}")
    if stats.quota_state == "full" or refused:
        alarm = "OUTBOX FULL: RESULTS REFUSED" if stats.quota_state == "full" else "OUTBOX WRITE FAILED"
        return ", ".join([*parts, f"{alarm} ({refused})"])
    if with_queue:
        text = f"outbox {stats.queued} queued"
        if stats.oldest_queued_age_s is not None and stats.queued:
            text += f", oldest {format_age(stats.oldest_queued_age_s)}"
        if stats.last_sent_wall is not None:
            text += f", last sent {format_age(time.time() - stats.last_sent_wall)} ago"
        parts.append(text)
    if stats.quota_state == "thumbnails_refused":
        parts.append("OUTBOX NEAR QUOTA: NO THUMBNAILS")
    return ", ".join(parts) or None
