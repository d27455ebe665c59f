"""What the uplink needs of the outbox (structural types, so tests can pass a fake) and what a
drain reports."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol


class ItemLike(Protocol):
    @property
    def result_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> bytes: ...


class StatsLike(Protocol):
    @property
    def queued(self) -> int: ...
    @property
    def oldest_queued_age_s(self) -> float | None: ...
    @property
    def last_sent_wall(self) -> float | None: ...
    @property
    def awaiting_receipt(self) -> int: ...
    @property
    def confirmed(self) -> int: ...


class OutboxLike(Protocol):
    """The part of ``edge.sync.outbox.Outbox`` the uplink uses."""

    def claim(
        self,
        limit: int,
        *,
        exclude: Collection[str] = (),
        live_window_s: float = 10.0,
        live_share: float = 0.5,
        resend_after_s: float | None = None,
    ) -> Sequence[ItemLike]: ...
    def mark_sent(self, result_ids: Sequence[str]) -> int: ...
    def mark_confirmed(self, result_ids: Sequence[str]) -> int: ...
    def stats(self) -> StatsLike: ...


@dataclass(frozen=True)
class DrainReport:
    drained: bool  # nothing claimable left queued, nothing in flight, (receipts on) nothing unconfirmed
    sent: int  # results marked sent during this drain
    remaining: int | None  # queued at the end (refused ones included)
    refused: int  # refused by the broker this session (stay queued)
    elapsed_s: float
    connected: bool
    last_error: str | None
    confirmed: int = 0  # results confirmed by the ingest's receipts during this drain
    awaiting_receipt: int | None = None  # sent but not confirmed at the end (receipts on)
