"""Fault class: inputs the runtime cannot use as given (issue items 5, 9 and 10).

Each fault is made for real: a file this user may not read (the check drops to the unprivileged
user ``nobody`` in a child when the suite runs as root, since root reads any file), a dangling
link, a FIFO, a directory where a clip should be, a DICOM folder removed mid-replay, a still
looped, a decoder thread count no machine has, a model exported at another size than its
manifest says, a device node that is no video device. The runtime must name the cause (never
"corrupt" for a file it could not open), stop before the run when the input cannot work, and
never hang on it. Every wait is bounded; nothing is asserted on how long anything took.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import DEFAULT_CLIP
from edge.errors import SourceError
from edge.sources import open_source
from edge.sources._common import DEFAULT_STILL_FPS, period_ns
from tests.support.dicom import installed_dicom
from tests.support.onnx_models import classifier_model, write_model_folder
from tests.support.paths import REPO, env_without, run_edge
from tests.support.sources import read_all

CONFIG = '[display]\nsinks = ["null"]\n[output]\ndir = "runs"\n'


def edge(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``edge ARGS`` as a user runs it, its home in ``cwd`` (the device key is made there)."""
    config = cwd / "edge.toml"
    if not config.exists():
        config.write_text(CONFIG)
    env = env_without("NOTIFY_SOCKET", "WATCHDOG_USEC", HOME=str(cwd))
    return run_edge("run", "--config", config, *args, cwd=cwd, timeout=timeout, env=env)


def still(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(path), rng.integers(0, 255, (size[1], size[0]), np.uint8))
    return path


def results_of(run_dir: Path) -> list[dict[str, object]]:
    (jsonl,) = run_dir.glob("runs/*/results.jsonl")
    return [json.loads(line) for line in jsonl.read_text().splitlines()]


# -- item 9: stills ------------------------------------------------------------------------------------------
def test_a_looped_still_is_paced_not_replayed_as_fast_as_possible(tmp_path: Path) -> None:
    """It was repeated 30 times a second (video://) or without pause (dicom://): hundreds of
    identical results in seconds. Now once a second, every repeat marked as the same image."""
    png = still(tmp_path / "still.png")
    out = edge("--source", f"video://{png}?loop=1", "--max-frames", "3", "--report", "r.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["source"]["native_fps"] == DEFAULT_STILL_FPS and report["source"]["realtime"] is True
    times = [np.datetime64(str(r["frame_time"]).rstrip("Z")) for r in results_of(tmp_path)]
    gaps = np.diff(times) / np.timedelta64(1, "s")
    assert len(times) == 3 and (gaps > 0.9).all(), f"repeats {gaps} s apart: not paced at 1 fps"
    for url in (f"video://{png}?loop=1", f"dicom://{installed_dicom('US1_UNCR.dcm')}?loop=1"):
        src = open_source(url)
        with src:
            frames = read_all(src, limit=2, timeout=5.0)
        assert len(frames) == 2, url
        assert frames[1].t_acquired_ns - frames[0].t_acquired_ns == period_ns(DEFAULT_STILL_FPS), url
        assert (
            all(f.meta["still"] for f in frames)
            and frames[0].meta["content_id"] == frames[1].meta["content_id"]
        )


def test_a_single_large_still_is_shown_with_its_own_result(tmp_path: Path) -> None:
    """It was paced like a live frame, shown before its (slow, large) analysis was done, and so
    recorded with "quality: --"; now it is handed over as a recording is: every frame, own result."""
    png = still(tmp_path / "large.png", (3000, 2000))
    out = edge("--source", f"video://{png}", "--report", "r.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["source"]["realtime"] is False
    assert report["pipeline"]["inference_policy_used"] == "every"
    (result,) = results_of(tmp_path)
    assert result["quality"] is not None


# -- item 10: files that cannot be read are not "corrupt" --------------------------------------------------
_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import edge.sources.builtin, edge.sources.video, edge.sources.dicom  # before the drop: the
    from edge.sources import open_source  # interpreter's own files may be closed to nobody
    sources = [open_source(url) for url in sys.argv[2:]]
    os.setgroups([]); os.setgid(int(sys.argv[1])); os.setuid(int(sys.argv[1]))
    out = []
    for src in sources:
        try:
            src.open(); src.close(); out.append("opened")
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps(out))
    """
)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is closed to other users)."""
    folder = Path(tempfile.mkdtemp(prefix="edge-inputs-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def open_as_unprivileged(urls: list[str]) -> list[str]:
    """Open each source as a user without rights to the files: this one, or nobody when root."""
    if os.geteuid() != 0:
        out = []
        for url in urls:
            try:
                open_source(url).open()
                out.append("opened")
            except Exception as exc:
                out.append(f"{type(exc).__name__}: {exc}")
        return out
    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("running as root, which reads any file, and there is no user 'nobody' to drop to")
    env = env_without("PYTHONPATH", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(uid), *urls], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.splitlines()[-1]))


def test_files_this_user_may_not_read_are_reported_as_permission_denied(shared_dir: Path) -> None:
    clip = shared_dir / "clip.mp4"
    shutil.copyfile(DEFAULT_CLIP, clip)
    png = still(shared_dir / "still.png")
    dcm = shared_dir / "image.dcm"
    shutil.copyfile(installed_dicom("US1_UNCR.dcm"), dcm)
    closed = shared_dir / "closed"
    closed.mkdir()
    shutil.copyfile(installed_dicom("US1_UNCR.dcm"), closed / "a.dcm")
    for path in (clip, png, dcm):
        path.chmod(0o600)
    closed.chmod(0o700)
    urls = [f"video://{clip}", f"video://{png}", f"dicom://{dcm}", f"dicom://{closed}"]
    got = open_as_unprivileged(urls)
    for path, message in zip((clip, png, dcm, closed), got):
        assert message.startswith(f"SourceError: {path}: permission denied"), message
        assert "corrupt" not in message and "OpenCV" not in message and "header" not in message


def test_a_path_that_is_no_readable_file_fails_the_run_naming_why(tmp_path: Path) -> None:
    """Before: "OpenCV cannot open this file (corrupt, ...)" for all three, and a FIFO could hang."""
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    link = tmp_path / "link.mp4"
    link.symlink_to(tmp_path / "moved-away.mp4")
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    for path, reason in (
        (folder, "is a directory"),
        (link, "dangling symbolic link"),
        (fifo, "not a regular file but a named pipe (FIFO)"),
    ):
        out = edge("--source", f"video://{path}", cwd=tmp_path, timeout=60)
        assert out.returncode == 2, out.stderr
        assert f"{path}: {reason}" in out.stderr and "corrupt" not in out.stderr


def test_decoder_threads_out_of_range_fail_at_once_naming_the_range(tmp_path: Path) -> None:
    """Before: FFmpeg spent ~25 s starting a million threads, then the clip was called corrupt."""
    out = edge("--source", f"video://{DEFAULT_CLIP}?threads=1000000", cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "threads='1000000' must be a whole number from 0 to 32" in out.stderr
    assert "corrupt" not in out.stderr


def test_a_dicom_folder_removed_mid_replay_ends_the_run_saying_so(tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    for name in ("a.dcm", "b.dcm", "c.dcm"):
        shutil.copyfile(installed_dicom("US1_UNCR.dcm"), stick / name)
    (tmp_path / "edge.toml").write_text(CONFIG)
    env = env_without("NOTIFY_SOCKET", "WATCHDOG_USEC", HOME=str(tmp_path))
    cmd = [sys.executable, "-m", "edge", "run", "--config", "edge.toml", "--report", "r.json"]
    proc = subprocess.Popen(
        [*cmd, "--source", f"dicom://{stick}?loop=1&fps=20"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size for p in tmp_path.glob("runs/*/results.jsonl")):
            assert proc.poll() is None and time.monotonic() < deadline, "no result from the replay"
            time.sleep(0.05)
        shutil.rmtree(stick)  # the USB stick is pulled
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode != 0, stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert f"{stick}: vanished during the replay" in report["error"]


def test_a_device_node_that_is_no_video_device_is_named_so(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("V4L2 device nodes are Linux's")
    out = edge("--source", "uvc:///dev/null?backend=any", cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "/dev/null: cannot open the video device (not a V4L2 video device)" in out.stderr


def test_a_dicom_folder_removed_between_reads_raises_naming_it(tmp_path: Path) -> None:
    """The source on its own: it ended quietly as if the replay were over; now it raises, saying why."""
    stick = tmp_path / "stick"
    stick.mkdir()
    for name in ("a.dcm", "b.dcm"):
        shutil.copyfile(installed_dicom("US1_UNCR.dcm"), stick / name)
    src = open_source(f"dicom://{stick}?realtime=0&loop=1")
    with src:
        assert src.read(5.0) is not None
        shutil.rmtree(stick)
        with pytest.raises(SourceError, match="vanished during the replay"):
            read_all(src, limit=10)


# -- items 5 and 10: a model that disagrees with its manifest ------------------------------------------------
@pytest.mark.parametrize("warmup_runs", [0, 3])
def test_a_model_exported_at_another_size_stops_the_run_before_it_starts(
    tmp_path: Path, warmup_runs: int
) -> None:
    """Before, with warmup_runs = 0: one ONNX Runtime traceback per frame, exit 0, "completed"."""
    folder = write_model_folder(
        tmp_path / "resized",
        classifier_model(2, size=64),
        {
            "name": "resized",
            "task": "classification",
            "input": {"name": "input", "shape": [1, 1, 32, 32], "color": "gray"},
            "outputs": [{"name": "logits", "kind": "logits"}],
            "labels": ["ok", "bad"],
            "ok_labels": ["ok"],
        },
    )
    (tmp_path / "edge.toml").write_text(
        CONFIG
        + f'[inference]\nwarmup_runs = {warmup_runs}\n[[models]]\nname = "resized"\npath = "{folder}"\n'
    )
    out = edge("--source", f"video://{DEFAULT_CLIP}", "--max-frames", "5", cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr
    assert (
        f"{folder}: model 'resized' (model.onnx) does not match its manifest: the manifest's input 'input' "
        "has shape [1, 1, 32, 32] (NCHW), the model's is [1, 1, 64, 64]"
    ) in out.stderr
    assert "Traceback" not in out.stderr and "ONNXRuntimeError" not in out.stderr
    assert not list(tmp_path.glob("runs/*/results.jsonl")), "the run must not have started"
