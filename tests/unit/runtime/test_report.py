"""What a run leaves behind: the report path checked before the run, outputs named only when written."""

from __future__ import annotations

import errno
import json
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.runtime.failures import StageMonitor
from edge.runtime.report import JsonlResultWriter, RunOutputs, check_report_path, settle_outputs, write_report


def test_a_report_path_is_checked_before_anything_runs(tmp_path: Path) -> None:
    check_report_path(tmp_path / "r.json")  # a new file in a folder that exists
    with pytest.raises(ConfigError, match=rf"--report {tmp_path}: is a directory; name a file"):
        check_report_path(tmp_path)
    missing = tmp_path / "nonexistent" / "dir" / "r.json"
    with pytest.raises(ConfigError, match=r"folder .*nonexistent/dir does not exist"):
        check_report_path(missing)
    assert not (tmp_path / "nonexistent").exists(), "no folder is made that the user did not ask for"
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        check_report_path(tmp_path / "f" / "r.json")


class Video:
    name = "video"

    def __init__(self, path: Path, frames: int, failure: BaseException | None = None) -> None:
        self.path, self.frames_written, self.failure = path, frames, failure


def test_outputs_are_named_only_when_written(tmp_path: Path) -> None:
    health = StageMonitor()
    for _ in range(3):
        health.failed("video", OSError("cannot write video x.ts with codec 'H264'"))
    out = RunOutputs(run_dir=tmp_path, video=tmp_path / "overlay.ts", results=tmp_path / "results.jsonl",
                     snapshots=tmp_path / "snapshots")  # fmt: skip
    settle_outputs(out, [Video(tmp_path / "overlay.ts", 0)], health.report())
    assert out.video is None and out.results is None and out.snapshots is None
    assert out.notes == {
        "video": "not written: OSError: cannot write video x.ts with codec 'H264'",
        "results": "not written: no result reached it",
        "snapshots": "none saved: no frame reached them",
    }


def test_outputs_cut_short_by_a_full_disk_are_kept_and_said_so(tmp_path: Path) -> None:
    health = StageMonitor()
    full = OSError(errno.EFBIG, "File too large")
    health.full("video", full)
    health.stop_output("video", "disk full (video: OSError: [Errno 27] File too large)")
    health.stop_output("results", "disk full (video: OSError: [Errno 27] File too large)")
    (tmp_path / "overlay.ts").write_bytes(b"G" * 188)
    (tmp_path / "results.jsonl").write_text("{}\n")
    out = RunOutputs(run_dir=tmp_path, video=tmp_path / "overlay.ts", results=tmp_path / "results.jsonl")
    settle_outputs(out, [Video(tmp_path / "overlay.ts", 12, failure=full)], health.report())
    assert out.video == tmp_path / "overlay.ts" and out.results == tmp_path / "results.jsonl"
    assert out.notes["video"].startswith("cut short after 12 frames: disk full")
    assert out.notes["results"].startswith("cut short: disk full")


def test_the_report_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_report({"exit": "completed"}, path)
    assert json.loads(path.read_text()) == {"exit": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"], "no temporary file left"


def _limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


def test_a_report_that_cannot_be_written_says_why_and_leaves_the_old_one(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text('{"exit": "old"}\n')
    child = textwrap.dedent(
        f"""
        from pathlib import Path
        from edge.runtime.report import write_report
        try:
            write_report({{"exit": "completed", "pad": "x" * 200}}, Path({str(tmp_path / "r.json")!r}))
        except OSError as exc:
            print(exc.errno, exc.strerror)
        """
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60,
                         preexec_fn=_limited, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"27 cannot write the run report {tmp_path / 'r.json'}: File too large")
    assert json.loads((tmp_path / "r.json").read_text()) == {"exit": "old"}, "never a torn report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_the_results_file_is_an_expendable_stage_named_results(tmp_path: Path) -> None:
    writer = JsonlResultWriter(tmp_path / "results.jsonl")
    assert writer.name == "results" and writer.expendable
    writer.close()
    writer.close()
