"""What goes into the outbox and what it hands back: the items it queues, its counts, what became
of a put; and the checks a result passes on the way in (a UUID id, plain JSON)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

QuotaState = Literal["ok", "thumbnails_refused", "full", "unknown"]
PutStatus = Literal["stored", "stored_without_thumbnail", "duplicate", "refused"]


@dataclass(frozen=True)
class OutboxItem:
    result_id: str  # the uuid7 result id (time-ordered); for feedback, its own uuid7 id
    kind: str  # "result" | "feedback"
    priority: int  # higher = more urgent
    created_ns: int  # time.time_ns() when put
    payload: bytes  # the exact MQTT payload (UTF-8 JSON), de-identified


@dataclass(frozen=True)
class OutboxStats:
    queued: int
    sent: int
    pruned: int
    refused: int  # by this Outbox object since it was opened
    thumbnails_refused: int  # likewise
    oldest_queued_age_s: float | None
    last_sent_wall: float | None  # time.time() of the last mark_sent (any process)
    bytes_used: int  # stored: pages in use (what the quota counts), not the WAL
    quota_bytes: int | None  # None: opened without a quota and none recorded in the file
    quota_state: str  # "ok" | "thumbnails_refused" | "full" | "unknown"
    confirmed: int = 0  # sent and confirmed by the ingest's receipt (part of ``sent``)
    awaiting_receipt: int = 0  # sent (PUBACK) but no receipt yet (part of ``sent``)
    last_confirmed_wall: float | None = None  # time.time() of the last receipt that confirmed one
    wal_bytes: int = 0  # the WAL file on disk (checkpointed scratch space, bounded; not counted)
    damaged: str | None = None  # a damaged outbox this handle moved aside (its new path)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class PutOutcome:
    """What became of a put: ``kept`` is True once the item is durably in the outbox."""

    result_id: str
    status: PutStatus
    reason: str | None = None

    @property
    def kept(self) -> bool:
        return self.status != "refused"


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a UUID string, got {type(value).__name__}")
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise ValueError(f"{what} is not a UUID: {value!r}") from exc
    return value


def encode(message: dict[str, Any]) -> bytes:
    try:
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"result is not plain JSON ({exc})") from exc
