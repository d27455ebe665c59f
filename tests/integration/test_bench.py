"""`edge bench` end to end at a small size: every scenario runs and the JSON holds the figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_runs_every_scenario(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge", "bench", "--frames", "30", "--model-runs", "5", "--out", "b.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "b.json").read_text())
    assert {(m["name"], m["precision"]) for m in r["models"]} == {
        ("us-quality", "fp32"),
        ("us-quality", "int8"),
        ("lung-detector", "fp32"),
        ("lung-detector", "int8"),
    }
    assert set(r["scenarios"]) == {"paced", "max", "paced_slow_model"}
    assert set(r["scenarios"]["max"]) == {"pipelined", "pipelined_latest", "naive"}
    for pair in r["scenarios"].values():
        for loop in pair.values():
            assert loop["frames"] > 0 and loop["ai_fps"] > 0
            assert {"p50", "p99"} <= loop["e2e_ms"].keys()
    assert r["scenarios"]["max"]["pipelined"]["skipped"] == 0, "auto: a flat-out replay infers every frame"
    for key in ("overhead_p50_ms", "max_ai_throughput_ratio_median_round", "slow_display_fps_pipelined"):
        assert r["checks"][key] is not None
    assert r["peak_rss_mb"] > 0
    assert "checks:" in out.stdout and "naive" in out.stdout
