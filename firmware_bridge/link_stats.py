"""The link's counters: per-connection receive counts, and the nested ``stats()`` view of all of them."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from firmware_bridge.framing import Deframer, SequenceTracker
from firmware_bridge.reassembly import FrameAssembler

TOP_KEYS = (
    "bytes_in",
    "bytes_out",
    "packets_in",
    "packets_out",
    "seq_lost",
    "seq_gaps",
    "seq_stale",
    "frames_delivered",
    "reconnects",
    "heartbeats_out",
    "reader_restarts",
    "command_resends",
)
GROUPS = ("decode_errors", "frames_dropped", "chunks_rejected", "reader_errors")


def rx_counts(d: Deframer, s: SequenceTracker, a: FrameAssembler) -> Counter[str]:
    """Counts held by one connection's deframer, sequence tracker and assembler."""
    c: Counter[str] = Counter(
        {
            "bytes_in": d.bytes_in,
            "packets_in": d.packets,
            "seq_lost": s.lost,
            "seq_gaps": s.gaps,
            "seq_stale": s.stale,
            "frames_delivered": a.completed,
        }
    )
    c.update({f"decode_errors.{k}": v for k, v in d.errors.items()})
    c.update({f"frames_dropped.{k}": v for k, v in a.dropped.items()})
    c.update({f"chunks_rejected.{k}": v for k, v in a.rejected.items()})
    return c


def retire(d: Deframer, s: SequenceTracker, a: FrameAssembler) -> Counter[str]:
    """The counts to carry over when a connection's receive state is replaced (reconnect)."""
    before = a.dropped["timeout"]
    a.expire(math.inf)  # a frame in flight at the pull is lost: count it as such
    lost = a.dropped["timeout"] - before
    a.dropped["timeout"] -= lost
    c = rx_counts(d, s, a)
    c["frames_dropped.link_lost"] += lost
    return c


def nest(flat: Counter[str], state: str) -> dict[str, Any]:
    """``{"state", TOP_KEYS..., group: {kind: n}}``: ``"group.kind"`` keys become nested dicts."""
    out: dict[str, Any] = {"state": state}
    out.update({group: {} for group in GROUPS})
    for key in TOP_KEYS:
        out[key] = flat.get(key, 0)
    for key, value in sorted(flat.items()):
        group, dot, kind = key.partition(".")
        if dot:
            out.setdefault(group, {})[kind] = value
        elif key not in out:
            out[key] = value
    out["frames_dropped_total"] = sum(out["frames_dropped"].values())
    return out
