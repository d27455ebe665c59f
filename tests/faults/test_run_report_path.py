"""Fault class: what a run leaves behind, and where (issue items 10 and 11), through ``edge run``.

Before: ``--report`` naming a folder crashed after the whole run; ``--report /nonexistent/dir/r.json``
made the folders; the README's config example, run as written, made /etc/scanner-edge/deid.key and
/var/lib/scanner-edge/outbox.sqlite3. Now a report path that cannot be written is refused before
anything runs (exit 2, named), no folder is made that the user did not ask for, the example keeps
everything beside it, and a run stopped by SIGINT still writes its report. Every wait is bounded;
no timing is asserted.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from edge.config import DEFAULT_CLIP
from tests.support.paths import EDGE, REPO, env_without, run_edge
from tests.support.polling import wait_for

CLIP = f"video://{DEFAULT_CLIP}?loop=1"


def env(home: Path) -> dict[str, str]:
    return env_without("NOTIFY_SOCKET", "WATCHDOG_USEC", "DISPLAY", "WAYLAND_DISPLAY", "EDGE_DEID_KEY",
                       HOME=str(home))  # fmt: skip


def test_a_report_path_naming_a_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    out = run_edge("run", "--headless", "--source", CLIP, "--max-frames", "5", "--report", "reports",
                   cwd=tmp_path, env=env(tmp_path))  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "--report reports: is a directory; name a file, e.g. reports/report.json" in out.stderr
    assert not (tmp_path / "runs").exists(), "nothing ran"


def test_a_report_path_in_a_missing_folder_is_refused_and_the_folder_not_made(tmp_path: Path) -> None:
    report = tmp_path / "nonexistent" / "dir" / "r.json"
    out = run_edge("run", "--headless", "--source", CLIP, "--max-frames", "5", "--report", report,
                   cwd=tmp_path, env=env(tmp_path))  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert f"folder {report.parent} does not exist" in out.stderr
    assert not (tmp_path / "nonexistent").exists() and not (tmp_path / "runs").exists()


def test_sigint_stops_the_run_and_the_report_is_written(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*EDGE, "run", "--headless", "--source", CLIP, "--report", "r.json"],
        cwd=tmp_path, env=env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: any(tmp_path.glob("runs/*/results.jsonl")) or proc.poll() is not None, 120,
                 "the first results")  # fmt: skip
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["exit"], report["reason"]) == ("stopped", "received SIGINT")


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("```toml", text.index("### Configuration")) + len("```toml")
    return text[start : text.index("```", start)]


def _state(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None


def test_the_readme_config_example_run_as_written_makes_nothing_outside_its_folder(tmp_path: Path) -> None:
    system = [Path("/etc/scanner-edge/deid.key"), Path("/var/lib/scanner-edge/outbox.sqlite3")]
    before = [_state(p) for p in system]
    config = tmp_path / "example" / "edge.toml"
    config.parent.mkdir()
    config.write_text(readme_example())
    work = tmp_path / "work"
    work.mkdir()
    out = run_edge("run", "--config", config, cwd=work, env=env(tmp_path))  # exactly as written
    if not Path("/data/clips/lung.mp4").exists():
        assert out.returncode == 2 and "/data/clips/lung.mp4" in out.stderr, out.stderr
        assert list(work.iterdir()) == [] and list(config.parent.iterdir()) == [config], "nothing made"
    # With a clip that exists, it runs; what it makes is beside it (and the run folder in ./runs).
    out = run_edge("run", "--config", config, "--headless", "--source", CLIP, "--max-frames", "10",
                   cwd=work, env=env(tmp_path))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (config.parent / "deid.key").stat().st_mode & 0o777 == 0o600
    assert f"created a new device key {config.parent / 'deid.key'}" in out.stderr, "said, with its path"
    assert (config.parent / "state" / "outbox.sqlite3").exists() and (work / "runs").is_dir()
    assert [_state(p) for p in system] == before, "no system path was made or touched"


def test_sigterm_during_start_up_still_writes_the_report(tmp_path: Path) -> None:
    # systemd stopping the service while it loads its models: before, the default action (no report).
    proc = subprocess.Popen(
        [*EDGE, "run", "--headless", "--source", CLIP, "--report", "r.json"],
        cwd=tmp_path, env={**env(tmp_path), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the first log line: the source is open, the models are loading
            if "INFO" in line or "WARNING" in line:
                break
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["exit"], report["reason"]) == ("stopped", "received SIGTERM")
