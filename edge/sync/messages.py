"""Wire messages, schema v4 (``docs/result-schema.md``, ``docs/result.schema.json``).

:func:`result_message` wraps ``Result.to_dict()`` with who sent it (device id, site), the exam
pseudonym and an optional thumbnail; :func:`feedback_message` is the operator's confirm / reject of
a result. Both carry ``kind`` ("result" | "feedback") and ``schema_version``. The outbox keeps these
messages and the uplink publishes them; the ingest reads them.

Version 3 adds to a result ``no_model`` (no model was for the frame's modality) and ``clip_scores``
(the clip-level score over the last seconds at one probe position); nothing else changed, so a v2
reader that ignores fields it does not know reads v3 right, and a v3 reader takes a v2 message as one
without them (``MESSAGE_VERSIONS``; docs/sync.md, "Message versions"). Version 4 adds an X-ray's
``exposure``, ``positioning`` and a small finding ``heatmap`` (docs/xray.md), null for ultrasound, in
the same way: older readers ignore them, and a v4 reader takes v2 and v3 messages as ones without them.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from edge.results import SCHEMA_VERSION, Result, iso_utc, new_result_id

# The versions a reader of this code understands; the outbox may still hold v2 messages from
# before an upgrade, and they are sent as they are.
MESSAGE_VERSIONS: tuple[int, ...] = (2, 3, SCHEMA_VERSION)

Verdict = Literal["confirm", "reject"]
VERDICTS: tuple[str, ...] = ("confirm", "reject")


@dataclass(frozen=True, slots=True)
class Device:
    """Who sends: a stable device id (unique within the fleet) and an optional site name."""

    id: str
    site: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "site": self.site}


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """A small de-identified JPEG of the overlay (the producer masks it before encoding)."""

    jpeg: bytes
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "mime": "image/jpeg",
            "width": int(self.width),
            "height": int(self.height),
            "data_b64": base64.b64encode(self.jpeg).decode("ascii"),
        }


def result_message(
    result: Result | dict[str, Any],
    device: Device,
    *,
    exam_pseudonym: str | None = None,
    thumbnail: Thumbnail | None = None,
) -> dict[str, Any]:
    """The message that the outbox keeps and the uplink publishes for one result."""
    body = result.to_dict() if isinstance(result, Result) else dict(result)
    body["device"] = device.to_dict()
    body["exam_pseudonym"] = exam_pseudonym
    body["thumbnail"] = None if thumbnail is None else thumbnail.to_dict()
    return body


def feedback_message(
    result_id: str,
    verdict: str,
    device: Device,
    *,
    operator: str | None = None,
    feedback_id: str | None = None,
    wall_time: float | None = None,
) -> dict[str, Any]:
    """The operator's verdict on a result: "confirm" or "reject". ``operator`` is a staff
    pseudonym, never a patient's identity; ``feedback_id`` is a UUIDv7 of its own."""
    if verdict not in VERDICTS:
        raise ValueError(f"feedback verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    try:
        uuid.UUID(result_id)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"feedback result_id is not a UUID: {result_id!r}") from exc
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "feedback",
        "feedback_id": feedback_id or new_result_id(),
        "result_id": str(result_id),
        "verdict": verdict,
        "operator": operator,
        "time": iso_utc(time.time() if wall_time is None else wall_time),
        "device": device.to_dict(),
    }
