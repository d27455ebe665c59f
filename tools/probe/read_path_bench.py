"""CPU of the probe read path per 512x512 frame, through a real pty from the virtual probe.

    python -m tools.probe.read_path_bench                      # 5 windows of 150 frames at 30 fps
    python -m tools.probe.read_path_bench --windows 7 --frames 300 --json

The virtual probe runs as its own process (its CPU is not counted) on a pty and streams 512x512
8-bit frames (one steady lung view) at ``--fps``; this process opens it with ``firmware_bridge.open``
over ``serial://`` exactly as the runtime does. The read path is the link's reader thread: pyserial /
the fd, the deframer (COBS, CRC), message decoding and reassembly, and the frame callback (which only
counts here). Its CPU is taken inside the callback with ``getrusage(RUSAGE_THREAD)`` (user and system
time of that thread alone, so other threads and other processes on a busy machine do not count),
after ``--warmup`` frames (startup removed) and then once per window of ``--frames`` frames. The
report gives each window and the median (the figure to quote) and minimum over windows, the whole
process's CPU over the same frames as a cross-check, and frames received and lost (gaps in the
probe's frame ids) with the link's counters: a gap with no lost packet (``seq_lost``), decode error
or dropped frame is a frame the probe skipped because this host did not read for a while (the
virtual probe queues at most ~1 MiB, as firmware would), not one the read path lost. Exit status 1
when a frame was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import firmware_bridge

START_TIMEOUT_S = 30.0


def _thread_cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of the calling thread."""
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime, r.ru_stime


class _Recorder:
    """The frame callback: counts frames, notes id gaps, marks CPU at window boundaries."""

    def __init__(self, warmup: int, frames: int, windows: int) -> None:
        self.boundaries = {warmup + k * frames for k in range(windows + 1)}
        self.last = warmup + windows * frames
        self.count = 0
        self.lost = 0
        self.marks: list[tuple[int, float, float, float]] = []  # frame count, user, sys, process CPU
        self._prev_id: int | None = None
        self.done = threading.Event()

    def __call__(self, frame: Any) -> None:
        fid = int(frame.frame_id)
        if self._prev_id is not None and fid != (self._prev_id + 1) & 0xFFFFFFFF:
            self.lost += (fid - self._prev_id - 1) & 0xFFFFFFFF
        self._prev_id = fid
        self.count += 1
        if self.count in self.boundaries:
            user, system = _thread_cpu()
            self.marks.append((self.count, user, system, time.process_time()))
            if self.count >= self.last:
                self.done.set()


def _start_probe(link: Path, fps: float, preset: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "firmware_bridge.emulator", "--link", str(link), "--preset", preset]
    cmd += ["--steady", "--fps", f"{fps:g}", "--seed", "0", "--parent", str(os.getpid())]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not link.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the virtual probe did not start: {' '.join(cmd)}")
        time.sleep(0.02)
    return proc


def bench(frames: int, windows: int, warmup: int, fps: float, preset: str) -> dict[str, Any]:
    rec = _Recorder(warmup, frames, windows)
    with tempfile.TemporaryDirectory(prefix="read-path-bench-") as tmp:
        link_path = Path(tmp) / "probe"
        proc = _start_probe(link_path, fps, preset)
        try:
            link = firmware_bridge.open(f"serial://{link_path}", on_frame=rec)
            try:
                link.start_streaming()
                budget = (warmup + frames * windows) / fps * 3 + 30  # a slow, busy box, not a hang
                finished = rec.done.wait(budget)
                stats = link.stats()
            finally:
                link.stop()
        finally:
            proc.terminate()
            proc.wait(5)
    if not finished:
        raise SystemExit(f"only {rec.count} frames arrived in {budget:.0f} s")
    rows = []
    for (n0, u0, s0, p0), (n1, u1, s1, p1) in zip(rec.marks, rec.marks[1:], strict=False):
        n = n1 - n0
        rows.append(
            {
                "frames": n,
                "reader_ms_per_frame": round(1e3 * ((u1 - u0) + (s1 - s0)) / n, 3),
                "reader_user_ms": round(1e3 * (u1 - u0) / n, 3),
                "reader_sys_ms": round(1e3 * (s1 - s0) / n, 3),
                "process_ms_per_frame": round(1e3 * (p1 - p0) / n, 3),
            }
        )
    per_frame = [r["reader_ms_per_frame"] for r in rows]
    return {
        "frame": "512x512 8-bit",
        "fps": fps,
        "warmup_frames": warmup,
        "windows": rows,
        "reader_ms_per_frame_median": statistics.median(per_frame),
        "reader_ms_per_frame_min": min(per_frame),
        "reader_user_ms_median": statistics.median(r["reader_user_ms"] for r in rows),
        "reader_sys_ms_median": statistics.median(r["reader_sys_ms"] for r in rows),
        "process_ms_per_frame_median": statistics.median(r["process_ms_per_frame"] for r in rows),
        "frames_received": rec.count,
        "frames_lost": rec.lost,
        "link": {
            k: stats[k]
            for k in (
                "bytes_in",
                "packets_in",
                "seq_lost",
                "decode_errors",
                "frames_dropped",
                "chunks_rejected",
            )
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=150, help="frames per window (default 150)")
    ap.add_argument("--windows", type=int, default=5, help="windows measured (default 5)")
    ap.add_argument("--warmup", type=int, default=30, help="frames before the first window (startup)")
    ap.add_argument("--fps", type=float, default=30.0, help="the virtual probe's frame rate")
    ap.add_argument("--preset", default="lung")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.windows < 1 or args.warmup < 1:
        ap.error("--frames, --windows and --warmup must be >= 1")
    out = bench(args.frames, args.windows, args.warmup, args.fps, args.preset)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, r in enumerate(out["windows"]):
            print(
                f"window {k}: {r['frames']} frames, reader {r['reader_ms_per_frame']:.3f} ms CPU/frame "
                f"(user {r['reader_user_ms']:.3f}, sys {r['reader_sys_ms']:.3f}), "
                f"process {r['process_ms_per_frame']:.3f}"
            )
        print(
            f"read path, 512x512 8-bit at {out['fps']:g} fps: {out['reader_ms_per_frame_median']:.3f} ms "
            f"CPU/frame (median of {len(out['windows'])} windows; min {out['reader_ms_per_frame_min']:.3f}; "
            f"user {out['reader_user_ms_median']:.3f} + sys {out['reader_sys_ms_median']:.3f}); "
            f"process {out['process_ms_per_frame_median']:.3f}"
        )
        print(f"frames received {out['frames_received']}, lost {out['frames_lost']}; link {out['link']}")
    return 1 if out["frames_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
