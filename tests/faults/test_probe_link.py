"""Probe-link faults, reproduced for real: the virtual probe on a pty with ``Faults``, read by ``edge run``.

Each test starts the emulator in this process on a real pseudo-terminal and runs the runtime as a
subprocess on ``serial://`` that pty, as a user would with a probe on a USB cable. Every wait is bounded;
nothing is asserted about timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.emulator import VirtualProbe
from firmware_bridge.emulator_faults import Faults
from firmware_bridge.emulator_pty import PtyProbe
from firmware_bridge.phantom import single
from tools.probe.fault_soak import soak

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux pseudo-terminals")

RUN_TIMEOUT_S = 180


@pytest.fixture
def virtual_probe() -> Iterator[Any]:
    started: list[PtyProbe] = []

    def start(faults: Faults) -> str:
        probe = VirtualProbe(single("lung", duration_s=3600.0), fps=30, faults=faults)
        pty = PtyProbe(probe)
        started.append(pty)
        return pty.start()

    yield start
    for pty in started:
        pty.stop()
        pty.probe.close()


def edge_run(cwd: Path, source: str, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    cmd = [sys.executable, "-m", "edge", "run", "--headless", "--source", source, "--report", "r.json", *args]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    report = json.loads((cwd / "r.json").read_text()) if (cwd / "r.json").exists() else {}
    return out, report


def test_a_probe_stall_is_survived_and_streaming_resumes(virtual_probe: Any, tmp_path: Path) -> None:
    # Before: the link-loss close raced the reader's read; the reader died of a TypeError and the
    # link stayed "reconnecting" until SIGTERM. 150 frames need the stream back after the stall.
    path = virtual_probe(Faults(stall_at_s=3.0, stall_s=4.0))
    out, report = edge_run(tmp_path, f"serial://{path}", "--max-frames", "150")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "no data from the probe for 3.0 s" in out.stderr and "probe connected (after" in out.stderr
    assert "Traceback" not in out.stderr and "died" not in out.stderr
    extra = report["source"]["extra"]
    link = extra["link"]
    assert report["exit"] == "completed" and report["counters"]["acquired"] == 150
    assert extra["link_state"] == "connected" and link["reconnects"] >= 1
    assert link["reader_errors"] == {} and link["reader_restarts"] == 0


def test_a_noisy_line_at_plug_in_does_not_stop_the_handshake(virtual_probe: Any, tmp_path: Path) -> None:
    # Before: one damaged reply to HELLO or START ended the run with exit status 2, every time.
    path = virtual_probe(Faults(corrupt_bytes_per_s=20.0, seed=5))
    out, report = edge_run(tmp_path, f"serial://{path}", "--max-frames", "30")
    assert out.returncode == 0, out.stderr[-3000:]
    link = report["source"]["extra"]["link"]
    assert report["exit"] == "completed" and report["counters"]["acquired"] == 30
    assert sum(link["decode_errors"].values()) > 0  # the noise was there, and was lived with


def test_a_probe_that_never_answers_fails_with_a_clear_error(tmp_path: Path) -> None:
    master, slave = os.openpty()  # a tty with nothing behind it: the wrong device, or dead firmware
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        out, _report = edge_run(tmp_path, f"serial://{path}", "--max-frames", "1")
    finally:
        os.close(slave)
        os.close(master)
    assert out.returncode == 2, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert path in last and "HELLO" in last and "attempt(s)" in last and "nothing came back" in last
    assert "Traceback" not in out.stderr


def test_a_bad_virtual_probe_url_is_refused_naming_the_parameter(tmp_path: Path) -> None:
    # Before: probe+emu://?fps=0 was reported as "multiple access on port?".
    out, _report = edge_run(tmp_path, "probe+emu://?preset=lung&fps=0", "--max-frames", "1")
    assert out.returncode == 2
    assert "query parameter fps must be > 0" in out.stderr and "multiple access" not in out.stderr


def test_a_short_fault_soak_passes_every_check() -> None:
    # The 30-minute acceptance soak in small: random stalls, cable pulls, noise and corrupt frames
    # against the real runtime; then SIGTERM and every check (tools/probe/fault_soak.py).
    result = soak(20.0, every=(1.0, 3.0), settle_s=8.0, seed=11)
    assert result["ok"], json.dumps(
        {k: result.get(k) for k in ("failed", "log_problems", "link", "evidence")}
    )
    assert sum(result["faults"].values()) >= 3 and result["results_kept"] > 0
