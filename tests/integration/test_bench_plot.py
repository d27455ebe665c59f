"""`edge bench --plot` end to end: a small real bench run writes both charts, and `--from-json`
charts the JSON it wrote again without running anything. Needs matplotlib (the tools set)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

pytestmark = pytest.mark.tools
pytest.importorskip("matplotlib", reason="matplotlib is not installed (tools set: scripts/setup.sh --tools)")

CHARTS = ("perf-latency.png", "perf-cpu.png")


def _edge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_bench_plot_writes_both_charts_and_recharts_its_json(tmp_path: Path) -> None:
    small = ("--frames", "30", "--model-runs", "5", "--rounds", "1", "--load", "1")
    out = _edge(*small, "--out", "b.json", "--plot", "charts", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for name in CHARTS:
        image = cv2.imread(str(tmp_path / "charts" / name))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 400, name
    again = _edge("--from-json", "b.json", "--plot", "again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert all((tmp_path / "again" / name).stat().st_size > 10_000 for name in CHARTS)
