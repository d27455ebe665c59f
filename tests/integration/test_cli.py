"""`edge` as a user runs it: a real process, the bundled clip and model, real files out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2

from edge.config import DEFAULT_CLIP
from tests.support.paths import EDGE, MODELS, run_edge


def test_help_tells_a_new_user_what_to_do_first(tmp_path: Path) -> None:
    out = run_edge("--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "Start here" in out.stdout and "edge run" in out.stdout


def test_run_headless_on_the_embedded_default(tmp_path: Path) -> None:
    out = run_edge("run", "--headless", "--max-frames", "60", "--report", "r.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    c = report["counters"]
    assert report["exit"] == "completed"
    # Every frame shown, or dropped as too old behind a newer one ([live] max_age_ms, a loaded box).
    assert c["acquired"] == 60 and c["displayed"] + c["stale_at_display"] == 60
    assert c["inferred"] + c["skipped"] == 60 and c["inferred"] > 0
    assert c["inference_errors"] == 0
    assert report["models"][0]["name"] == "us-quality"
    assert report["models"][0]["precision"] == "int8"
    assert report["models"][0]["provider"] == "CPUExecutionProvider"
    assert report["source"]["kind"] == "probe+emu", "the embedded default is the virtual probe"
    assert report["source"]["extra"]["link"]["frames_delivered"] >= 60
    for stage in ("e2e", "model", "overhead", "display"):
        assert {"p50", "p95", "p99", "max"} <= report["latency_ms"][stage].keys()
    assert 0 < report["peak_rss_mb"] < 400
    video = Path(report["outputs"]["video"])
    cap = cv2.VideoCapture(str(tmp_path / video if not video.is_absolute() else video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == c["displayed"]
    cap.release()
    results = (tmp_path / report["outputs"]["results"]).read_text().splitlines()
    assert len(results) == c["inferred"]
    first = json.loads(results[0])
    assert first["quality"]["label"] in {"diagnostic", "no_contact", "shadow", "gain_high", "gain_low"}
    assert "fps" in out.stdout and "report:" in out.stdout
    assert "no display" in out.stderr or "headless" in out.stderr.lower()


def test_sigterm_stops_within_a_second_and_still_reports(tmp_path: Path) -> None:
    url = f"video://{DEFAULT_CLIP}?loop=1"
    proc = subprocess.Popen(
        [*EDGE, "run", "--headless", "--source", url, "--report", "r.json"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if "stop with Ctrl-C" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)  # let frames flow
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    took = time.monotonic() - t0
    # The pipeline's own stop is within 1 s; writing the report and exiting the interpreter add a little.
    assert took < 2.0, f"took {took:.2f} s to exit after SIGTERM"
    assert proc.returncode == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit"] == "stopped" and report["counters"]["displayed"] > 0


def test_bad_config_names_the_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[pipeline]\ndisplay_qeue = 3\n")
    out = run_edge("run", "--config", str(cfg), "--headless", cwd=tmp_path)
    assert out.returncode == 2
    assert f"{cfg}: key pipeline.display_qeue: unknown key" in out.stderr


def test_missing_source_file_is_named(tmp_path: Path) -> None:
    out = run_edge("run", "--headless", "--source", f"video://{tmp_path}/nope.mp4", cwd=tmp_path)
    assert out.returncode == 2
    assert "nope.mp4" in out.stderr
    assert not (tmp_path / "runs").exists(), "a run that cannot start leaves no empty run folder"


def test_models_list_and_verify(tmp_path: Path) -> None:
    out = run_edge("models", "list", cwd=tmp_path)
    assert out.returncode == 0 and "us-quality" in out.stdout and "[ok]" in out.stdout
    out = run_edge("models", "verify", str(MODELS / "us-quality"), cwd=tmp_path)
    assert out.returncode == 0 and "int8" in out.stdout and "fp32" in out.stdout


def test_a_tampered_model_is_refused_before_anything_runs(tmp_path: Path) -> None:
    import shutil

    models = tmp_path / "models"
    shutil.copytree(MODELS / "us-quality", models / "us-quality")
    int8 = models / "us-quality" / "us-quality-int8.onnx"
    data = bytearray(int8.read_bytes())
    data[len(data) // 2] ^= 0xFF
    int8.write_bytes(bytes(data))
    cfg = tmp_path / "edge.toml"
    cfg.write_text('[inference]\nmodels_dir = "models"\n')
    out = run_edge("run", "--config", str(cfg), "--headless", "--max-frames", "5", cwd=tmp_path)
    assert out.returncode == 2
    assert "us-quality-int8.onnx: sha256" in out.stderr and "refusing to load it" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_emulate_prints_a_pty_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*EDGE, "emulate", "--preset", "bladder", "--fps", "10"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    path = proc.stdout.readline().strip()
    assert path.startswith("/dev/pts/") and Path(path).exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
