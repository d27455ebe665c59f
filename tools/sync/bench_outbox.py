"""Outbox put latency on this machine: every put committed and fsynced (WAL, synchronous=FULL).

    .venv/bin/python -m tools.sync.bench_outbox           # 2000 puts of a real result message
    .venv/bin/python -m tools.sync.bench_outbox --n 5000 --dir /var/lib/scanner-edge --thumbnail

Puts real schema v2 messages (built from a Result as the runtime builds them), flat out and then
paced at 30 per second (the live rate), and prints p50/p99/max of put() in ms, plus the time
stats() takes with that many rows. The database goes in a temporary folder under --dir, so
point --dir at the disk the outbox will live on: fsync cost is the disk's, not Python's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edge.results import Box, Finding, ModelInfo, Quality, Result, StageTimes, new_result_id
from edge.sync.messages import Device, result_message
from edge.sync.outbox import Outbox


def _message(seq: int) -> dict[str, object]:
    result = Result(
        result_id=new_result_id(),
        frame_seq=seq,
        frame_wall_time=time.time(),
        source_id="probe+emu://?preset=lung",
        modality="US",
        quality=Quality("diagnostic", 0.93, True, {"diagnostic": 0.93, "no_contact": 0.02, "shadow": 0.05}),
        findings=(Finding("b_line", 0.81, Box(120, 80, 180, 300)),),
        models=(ModelInfo("us-quality", "1.0.0", "ab" * 32, "int8", "onnxruntime", "CPUExecutionProvider"),),
        times=StageTimes(0, 1_000_000, 2_000_000, 5_000_000, 6_000_000),
        priority=1,
        image_size=(640, 480),
        pixel_spacing_mm=(0.3, 0.3),
    )
    return result_message(result, Device("edge-bench"), exam_pseudonym="exam-bench")


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _summary(name: str, ms: list[float]) -> str:
    return (
        f"{name:<26} n={len(ms):<5} p50={statistics.median(ms):6.2f} ms  p99={_pct(ms, 0.99):6.2f} ms"
        f"  max={max(ms):6.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="puts flat out")
    ap.add_argument("--paced-s", type=float, default=5.0, help="seconds of puts at 30 per second")
    ap.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure")
    ap.add_argument("--thumbnail", action="store_true", help="add a 256x192 JPEG to every put")
    args = ap.parse_args()
    thumb = None
    if args.thumbnail:
        noise = np.random.default_rng(0).integers(0, 255, (192, 256, 3), np.uint8)
        thumb = cv2.imencode(".jpg", cv2.GaussianBlur(noise, (9, 9), 3))[1].tobytes()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, Outbox(Path(tmp) / "outbox.sqlite3") as ob:
        flat: list[float] = []
        for i in range(args.n):
            m = _message(i)
            t0 = time.perf_counter()
            ob.put(m, thumbnail=thumb)
            flat.append((time.perf_counter() - t0) * 1e3)
        paced: list[float] = []
        next_t = time.perf_counter()
        for i in range(int(args.paced_s * 30)):
            next_t += 1 / 30
            time.sleep(max(0.0, next_t - time.perf_counter()))
            m = _message(args.n + i)
            t0 = time.perf_counter()
            ob.put(m, thumbnail=thumb)
            paced.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        stats = ob.stats()
        stats_ms = (time.perf_counter() - t0) * 1e3
        print(f"outbox in {tmp} (thumbnail: {len(thumb) if thumb else 0} bytes)")
        print(_summary("put, flat out", flat))
        print(_summary("put, paced at 30/s", paced))
        print(f"throughput flat out       {args.n / (sum(flat) / 1e3):.0f} puts/s")
        print(f"stats() with {stats.queued} rows  {stats_ms:.2f} ms; {stats.bytes_used / 2**20:.1f} MiB used")


if __name__ == "__main__":
    main()
