"""A cable pull during `edge run` on the virtual probe: logged, shown, reconnected, nothing kept lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2


def test_cable_pull_is_survived_without_losing_results(tmp_path: Path) -> None:
    url = "probe+emu://?preset=lung&fps=30&disconnect_at=2&reconnect_after=1"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "run",
            "--headless",
            "--source",
            url,
            "--max-frames",
            "120",
            "--report",
            "r.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "probe disconnected" in out.stderr and "probe connected" in out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    c, extra = report["counters"], report["source"]["extra"]
    assert report["exit"] == "completed"
    assert c["acquired"] == c["displayed"] + c["stale_at_display"] == 120  # stale: [live] max_age_ms
    assert extra["disconnects"] == 1 and extra["link"]["reconnects"] == 1
    results = (tmp_path / report["outputs"]["results"]).read_text().splitlines()
    assert len(results) == c["results"] == c["inferred"], "every result kept through the pull"
    cap = cv2.VideoCapture(str(tmp_path / report["outputs"]["video"]))
    written = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert written > 120, "while unplugged the last frame was redrawn with the 'probe disconnected' alarm"
