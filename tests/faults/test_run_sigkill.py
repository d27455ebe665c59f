"""Fault class: the runtime killed outright (issue item 8): SIGKILL, as an OOM killer or a power cut.

Before: the overlay MP4 had no index ("moov atom not found") and the exam video was lost with the
run. Now the recording is MPEG-TS, which needs no trailer: after a SIGKILL mid-run the file opens
and plays up to the kill (less what the encoder still held). The results file, flushed per line,
keeps every line whole. Every wait is bounded; no timing is asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import cv2

from edge.config import DEFAULT_CLIP
from tests.support.paths import EDGE, env_without
from tests.support.polling import wait_for


def test_a_recording_survives_sigkill_and_plays(tmp_path: Path) -> None:
    (tmp_path / "edge.toml").write_text('[output]\ndir = "runs"\n[outbox]\nenabled = false\n')
    env = env_without("NOTIFY_SOCKET", "WATCHDOG_USEC", "DISPLAY", "WAYLAND_DISPLAY", HOME=str(tmp_path))
    proc = subprocess.Popen(
        [*EDGE, "run", "--config", "edge.toml", "--headless", "--source", f"video://{DEFAULT_CLIP}?loop=1"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def recorded() -> int:
            return sum(p.stat().st_size for p in tmp_path.glob("runs/*/overlay.*"))

        # Well into the recording: several of the encoder's writes have reached the file.
        wait_for(
            lambda: recorded() > 400_000 or proc.poll() is not None, 120, "the overlay recording to grow"
        )
        assert proc.poll() is None, "the run ended before it was killed"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    (video,) = tmp_path.glob("runs/*/overlay.*")
    assert video.suffix == ".ts"
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened(), f"{video} does not open after SIGKILL"
    frames = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        assert image.shape[0] > 0
        frames += 1
    cap.release()
    assert frames > 10, f"only {frames} frames play"
    (results,) = tmp_path.glob("runs/*/results.jsonl")
    lines = results.read_text().splitlines()
    assert lines and all(json.loads(line)["result_id"] for line in lines), "every line whole"
    assert not (video.parent / "report.json").exists(), "no report on SIGKILL: the one exception"
