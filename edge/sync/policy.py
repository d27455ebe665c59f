"""The uplink's small decisions, kept apart from the network code so they are tested directly:
topic names, reconnect backoff, the MQTT v5 -> 3.1.1 fallback, receipts. The HUD and status texts
are in ``edge.sync.status``.
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass

# MQTT v5 CONNACK 0x84 "Unsupported Protocol Version"; an MQTT 3.1.1 broker answers a v5 CONNECT
# with its own CONNACK return code 1 "unacceptable protocol version" (MQTT 3.1.1, 3.2.2.3).
V5_UNSUPPORTED_PROTOCOL = 0x84
V311_UNACCEPTABLE_PROTOCOL = 1
# Topic levels must not carry MQTT wildcards or separators: one device could then write another's topic.
_LEVEL = re.compile(r"^[^/#+\x00]+$")


def check_topic_level(name: str, value: str) -> str:
    if not _LEVEL.match(value):
        raise ValueError(f"{name} {value!r} cannot be an MQTT topic level (no '/', '+', '#', NUL; not empty)")
    return value


@dataclass(frozen=True)
class Topics:
    """``<prefix>/<site>/<device>/{results,feedback,status,receipts}``: the ACL gives a device only its
    own, and of ``receipts`` (written by the ingest) only reading."""

    prefix: str
    site: str
    device: str

    def __post_init__(self) -> None:
        check_topic_level("topic prefix", self.prefix)
        check_topic_level("site", self.site)
        check_topic_level("device id", self.device)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.device}"

    @property
    def results(self) -> str:
        return f"{self.base}/results"

    @property
    def feedback(self) -> str:
        return f"{self.base}/feedback"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def receipts(self) -> str:
        return f"{self.base}/receipts"

    def for_kind(self, kind: str) -> str:
        return self.feedback if kind == "feedback" else self.results


def receipt_payload(ids: list[str], ingest: str, wall: float | None = None) -> bytes:
    """A receipt: the ingest has committed these ids (results and feedback) and holds them."""
    return json.dumps(
        {"ids": ids, "ingest": ingest, "time": wall if wall is not None else time.time()},
        separators=(",", ":"),
    ).encode()


def parse_receipt(payload: bytes) -> list[str]:
    """The ids of a receipt; ValueError naming what is wrong."""
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"receipt is not UTF-8 JSON: {exc}") from exc
    ids = message.get("ids") if isinstance(message, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise ValueError("receipt has no 'ids' list of non-empty strings")
    return ids


def status_payload(device: str, state: str, wall: float | None = None) -> bytes:
    """The retained status message ("online", or "offline" as said on stop or by the last will)."""
    return json.dumps(
        {"device": device, "status": state, "time": wall if wall is not None else time.time()},
        separators=(",", ":"),
    ).encode()


class Backoff:
    """Exponential backoff with full jitter: the n-th wait is uniform in [0, min(max, min*2**n)].

    Full jitter spreads a fleet that lost the same broker at once, so they do not all return
    together (the AWS architecture blog's "Exponential Backoff And Jitter" comparison).
    """

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"backoff needs 0 < min ({min_s}) <= max ({max_s})")
        self.min_s, self.max_s = min_s, max_s
        self.failures = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        return min(self.max_s, self.min_s * 2 ** min(self.failures, 32))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0.0, self.ceiling())
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


def should_fall_back(
    protocol: str, *, reason_code: int | None, closed_before_connack: bool, socket_error: bool = False
) -> bool:
    """Whether a failed MQTT v5 connect means the broker speaks only 3.1.1.

    Yes when it said so (v5 reason 0x84, or the 3.1.1 return code 1 read back), or when it closed
    the connection cleanly on the CONNECT without any CONNACK, as some older brokers do (the
    caller takes that one back if 3.1.1 fares no better). Never on a socket error: a TLS alert (a
    client certificate refused), an unclean TLS close or a reset is not about the MQTT version.
    Never from 3.1.1, never on an authorisation refusal.
    """
    if protocol != "5":
        return False
    if reason_code in (V5_UNSUPPORTED_PROTOCOL, V311_UNACCEPTABLE_PROTOCOL):
        return True
    return closed_before_connack and not socket_error
