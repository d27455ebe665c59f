"""Fault class: a display that is named but not there (issue item 7), through ``edge run``.

Before: ``DISPLAY=:99`` with no X server behind it aborted the process inside Qt (rc 134): no
report, no recording. Now a test window is opened in a child process first (Qt aborts the process
that cannot reach the display, so only a child may try); the run falls back to recording the
overlay and says so in the log, on the HUD (drawn into the recording) and in the report. The fault
is real: a display number no server listens on. Every wait is bounded; no timing is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from tests.support.paths import env_without, run_edge


def test_a_display_with_no_server_falls_back_to_recording_and_says_so(tmp_path: Path) -> None:
    if Path("/tmp/.X11-unix/X99").exists():
        pytest.skip("an X server listens on :99 here")
    env = env_without("WAYLAND_DISPLAY", "NOTIFY_SOCKET", "WATCHDOG_USEC", DISPLAY=":99", HOME=str(tmp_path))
    out = run_edge("run", "--max-frames", "30", "--report", "r.json", cwd=tmp_path, env=env, timeout=180)
    assert out.returncode == 0, out.stderr  # not 134: nothing aborted
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit"] == "completed"
    display = report["display"]
    assert display["window"] is False and display["fallback"] == "video"
    assert display["why"].startswith("DISPLAY=:99: ") and ":99" in display["why"][len("DISPLAY=:99: ") :]
    assert "no display (DISPLAY=:99" in out.stderr and "instead of a window" in out.stderr
    assert any(n.startswith("NO DISPLAY: recording to overlay.ts") for n in report["health"]["notes"])
    video = tmp_path / report["outputs"]["video"]
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    c = report["counters"]  # every frame recorded but those dropped as too old ([live] max_age_ms)
    assert n == c["displayed"] == 30 - c["stale_at_display"]
