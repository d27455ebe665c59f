from __future__ import annotations

import json
import random

import pytest

from edge.sync.policy import (
    Backoff,
    Topics,
    parse_receipt,
    receipt_payload,
    should_fall_back,
    status_payload,
)


def test_backoff_is_full_jitter_under_a_doubling_capped_ceiling() -> None:
    b = Backoff(0.5, 4.0, rng=random.Random(7))
    ceilings, delays = [], []
    for _ in range(8):
        ceilings.append(b.ceiling())
        delays.append(b.next_delay())
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule
    b.reset()
    assert b.ceiling() == 0.5


def test_backoff_spreads_a_fleet() -> None:
    # 1,000 devices that lost the broker together do not come back together.
    firsts = [Backoff(1.0, 60.0, rng=random.Random(i)).next_delay() for i in range(1000)]
    assert min(firsts) < 0.05 and max(firsts) > 0.95


def test_backoff_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(2.0, 1.0)


@pytest.mark.parametrize(
    ("protocol", "code", "closed", "socket_error", "expected"),
    [
        ("5", 0x84, False, False, True),  # v5 "unsupported protocol version"
        ("5", 1, False, False, True),  # a 3.1.1 broker's "unacceptable protocol version"
        ("5", None, True, False, True),  # hung up cleanly on the v5 CONNECT (tentative)
        ("5", None, True, True, False),  # a TLS alert or unclean close: a certificate, not the version
        ("5", 0x86, False, False, False),  # bad user name or password: not a protocol question
        ("5", 0x87, False, False, False),
        ("5", None, False, False, False),  # network trouble
        ("3.1.1", 0x84, False, False, False),
        ("3.1.1", None, True, False, False),
    ],
)
def test_fallback_decision(
    protocol: str, code: int | None, closed: bool, socket_error: bool, expected: bool
) -> None:
    decided = should_fall_back(
        protocol, reason_code=code, closed_before_connack=closed, socket_error=socket_error
    )
    assert decided is expected


def test_topics_and_their_levels() -> None:
    t = Topics("scanners", "ward-3", "dev-9")
    assert (t.results, t.feedback, t.status) == (
        "scanners/ward-3/dev-9/results",
        "scanners/ward-3/dev-9/feedback",
        "scanners/ward-3/dev-9/status",
    )
    assert t.for_kind("feedback") == t.feedback and t.for_kind("result") == t.results
    for bad in ("a/b", "+", "#", "", "x\x00"):
        with pytest.raises(ValueError, match="topic level"):
            Topics("scanners", "site", bad)


def test_status_payload_is_json_with_device_and_time() -> None:
    msg = json.loads(status_payload("dev-1", "offline", wall=12.5))
    assert msg == {"device": "dev-1", "status": "offline", "time": 12.5}


def test_receipt_round_trip_and_bad_receipts() -> None:
    assert Topics("scanners", "s", "d").receipts == "scanners/s/d/receipts"
    payload = receipt_payload(["a", "b"], "ingest-1", wall=3.0)
    assert json.loads(payload) == {"ids": ["a", "b"], "ingest": "ingest-1", "time": 3.0}
    assert parse_receipt(payload) == ["a", "b"]
    with pytest.raises(ValueError, match="not UTF-8 JSON"):
        parse_receipt(b"\xff")
    for bad in (b"[]", b'{"ids": "a"}', b'{"ids": [1]}', b'{"ids": [""]}', b"{}"):
        with pytest.raises(ValueError, match="no 'ids' list"):
            parse_receipt(bad)
