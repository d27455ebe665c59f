"""Fault class: the disk fills up under a run (issue item 6), made for real with a file size limit.

``edge run`` runs in a child with RLIMIT_FSIZE set (and SIGXFSZ ignored, so a write past the limit
fails with EFBIG as on a full disk, rather than killing the process). Before: a traceback per result
from the JSONL writer, an OSError at close, rc 1, no report, and an unplayable MP4 after "wrote 800
frames". Now the recording and the results file stop (expendable), the outbox and the live display go
on, the HUD says DISK FULL, and the run ends with a report that says what was cut short; a report
that cannot be written is said on stderr, exit 1. Every wait is bounded; no timing is asserted.
"""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2

from edge.config import DEFAULT_CLIP
from edge.sync.outbox import Outbox
from tests.support.paths import EDGE, env_without

CLIP = f"video://{DEFAULT_CLIP}?loop=1"
LIMIT = 1_000_000  # bytes per file: the overlay video (about 0.5 MB/s here) passes it in seconds


def limited(size: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: both survive it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def edge_run(tmp_path: Path, config: str, limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "edge.toml").write_text(config)
    env = env_without("NOTIFY_SOCKET", "WATCHDOG_USEC", "DISPLAY", "WAYLAND_DISPLAY", HOME=str(tmp_path))
    return subprocess.run(
        [*EDGE, "run", "--config", str(tmp_path / "edge.toml"), "--headless", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
        preexec_fn=limited(limit), check=False,
    )  # fmt: skip


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_a_full_disk_stops_the_recordings_keeps_the_outbox_and_the_run_reports(tmp_path: Path) -> None:
    config = (
        f'[source]\nurl = "{CLIP}"\n[display]\nsinks = ["video", "snapshots"]\nsnapshot_every_s = 0.5\n'
        '[output]\ndir = "runs"\n[outbox]\npath = "outbox.sqlite3"\n'
    )
    out = edge_run(tmp_path, config, LIMIT, "--max-frames", "200", "--report", "r.json")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit"] == "completed", report["reason"]
    health = report["health"]
    assert health["disk_full"].startswith("video: OSError: [Errno 27] File too large")
    assert "DISK FULL writing video" in out.stderr and "Traceback" not in out.stderr
    # The live loop went on to the end: every frame acquired and displayed, every one inferred.
    c = report["counters"]
    # (or dropped as too old behind a newer one: [live] max_age_ms, on a loaded box)
    assert c["acquired"] == c["displayed"] + c["stale_at_display"] == 200 and c["inference_errors"] == 0
    # The recording is kept, playable up to where the disk took it, and said to be cut short.
    notes = report["outputs"]["notes"]
    assert notes["video"].startswith("cut short after ") and "disk full" in notes["video"]
    video = tmp_path / report["outputs"]["video"]
    assert video.suffix == ".ts" and video.stat().st_size <= LIMIT
    assert 0 < count_frames(video) < 200
    assert notes["results"].startswith("cut short: disk full"), "the results file stopped with it"
    assert health["stages"]["snapshots"]["stopped"], "snapshots stopped with the recording"
    lines = (tmp_path / report["outputs"]["results"]).read_text().splitlines()
    assert all(json.loads(line)["result_id"] for line in lines), "no torn line"
    # The outbox is kept whole: everything it said it stored is there, and it was never switched off
    # (the limit applies to its write-ahead log too, so it may have refused some, counted in its report).
    ob = report["outbox"]
    assert ob["puts"].get("stored", 0) > 0 and health["stages"]["outbox"]["stopped"] is None
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    try:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        db.close()
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        assert outbox.stats().queued == ob["puts"]["stored"] == ob["queued"]


def test_a_report_that_cannot_be_written_is_said_on_stderr_and_fails_the_run(tmp_path: Path) -> None:
    # Nothing else is written (no outbox, no results file, no video): the report is what fills up.
    config = (
        f'[source]\nurl = "{CLIP}"\n[display]\nsinks = ["null"]\n[output]\ndir = "runs"\n'
        "results_jsonl = false\n[outbox]\nenabled = false\n"
    )
    out = edge_run(tmp_path, config, 2048, "--max-frames", "10", "--report", "r.json")
    assert out.returncode == 1, out.stderr
    assert "REPORT NOT WRITTEN: cannot write the run report r.json: File too large" in out.stderr
    assert not (tmp_path / "r.json").exists() and not list(tmp_path.glob(".r.json.*")), "nothing torn left"
