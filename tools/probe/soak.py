"""Soak and cable-pull check of the probe link over a real pty, through the runtime's probe source.

    python -m tools.probe.soak --seconds 600                       # zero lost frames for 10 minutes?
    python -m tools.probe.soak --seconds 20 --disconnect-at 5      # cable pulled at 5 s, back 1 s later

The virtual probe runs as its own process (as ``edge run --source probe+emu://`` starts it) and
streams 512x512 8-bit frames; this reads them through ``edge.sources.probe`` exactly as the
pipeline does, checks the probe's frame ids for gaps, times the outage around a cable pull, and
reports the link's own counters. Exit status 1 when a frame was lost outside a pulled cable.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import resource
import sys
import time
from typing import Any

from edge.sources import open_source


def soak(seconds: float, fps: float, disconnect_at: float | None, reconnect_after: float) -> dict[str, Any]:
    url = f"probe+emu://?preset=lung&fps={fps:g}"
    if disconnect_at is not None:
        url += f"&disconnect_at={disconnect_at:g}&reconnect_after={reconnect_after:g}"
    src = open_source(url)
    src.open()
    ids: list[int] = []
    received: list[int] = []
    statuses: set[str] = set()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t_end = time.monotonic() + seconds
    try:
        while time.monotonic() < t_end:
            frame = src.read(0.2)
            status = src.status_text()  # type: ignore[attr-defined]
            if status:
                statuses.add(status)
            if frame is None:
                continue
            ids.append(int(frame.meta["frame_id"]))
            received.append(frame.received_ns)
        info = src.info
    finally:
        src.close()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    missing = sum(b - a - 1 for a, b in itertools.pairwise(ids) if b > a + 1)
    gaps_ms = [(b - a) / 1e6 for a, b in itertools.pairwise(received)]
    longest = max(gaps_ms, default=0.0)
    # When the stream paused (> 10 frame periods): seconds into the soak, and for how long.
    pauses = [
        (round((received[k] - received[0]) / 1e9, 1), round(g))
        for k, g in enumerate(gaps_ms)
        if g > 10e3 / fps
    ]
    out: dict[str, Any] = {
        "url": url,
        "seconds": seconds,
        "frames": len(ids),
        "fps": len(ids) / seconds,
        # The probe numbers its frames: the ones it sent between the first and last received.
        "frames_sent": (ids[-1] - ids[0] + 1) if ids else 0,
        "missing_frame_ids": missing,
        "longest_gap_ms": round(longest, 1),
        "pauses_s_ms": pauses[:20],
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "statuses_seen": sorted(statuses),
        "host_cpu_ms_per_frame": round(1e3 * cpu_s / max(1, len(ids)), 3),
        "link": info.extra.get("link", {}),
        "disconnects": info.extra.get("disconnects"),
    }
    if disconnect_at is not None:
        # The device was away ``reconnect_after`` s; the rest of the outage is ours to reconnect.
        out["reconnect_after_device_return_s"] = round(longest / 1e3 - reconnect_after - 1 / fps, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--disconnect-at", type=float, help="pull the cable this many s after streaming starts")
    ap.add_argument("--reconnect-after", type=float, default=1.0, help="plug it back this much later")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    result = soak(args.seconds, args.fps, args.disconnect_at, args.reconnect_after)
    print(json.dumps(result, indent=2))
    lost = result["missing_frame_ids"] if args.disconnect_at is None else 0
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
