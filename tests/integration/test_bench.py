"""`edge bench` end to end at a small size: every scenario runs, the JSON holds the figures, they are
consistent (CPU stages add up to the total; one capture-to-screen value per result shown). The
charts (--plot, matplotlib from the tools set) are tested in test_bench_plot.py. Figures are never
asserted against a target: that is the bench's job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_runs_every_scenario(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "bench",
            "--frames",
            "30",
            "--model-runs",
            "5",
            "--rounds",
            "1",
            "--load",
            "1",
            "--out",
            "b.json",
        ],
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
    assert set(r["scenarios"]) == {"paced", "paced_no_recording", "paced_loaded", "max", "paced_slow_model"}
    assert r["load"]["hogs"] == 1 and r["load"]["nice"] == 5
    assert set(r["scenarios"]["max"]) == {"pipelined", "pipelined_latest", "naive"}
    for pair in r["scenarios"].values():
        for loop in pair.values():
            assert loop["frames"] > 0 and loop["ai_fps"] > 0
            assert {"p50", "p99"} <= loop["e2e_ms"].keys()
            per = loop["cpu"]["ms_per_frame"]
            assert abs(sum(v for k, v in per.items() if k != "total") - per["total"]) < 0.02
            assert per["total"] > 0 and per["model"] > 0
            shown = loop["result_on_screen_ms"]
            assert len(loop["capture_to_screen_values"]) == shown["count"] > 0
            assert {"p50", "p95", "p99", "max"} <= shown.keys()
    paced = r["scenarios"]["paced"]
    assert paced["pipelined"]["cpu"]["ms_per_frame"]["recording"] > 0
    assert r["scenarios"]["paced_no_recording"]["naive"]["cpu"]["ms_per_frame"]["recording"] == 0
    assert r["scenarios"]["max"]["pipelined"]["skipped"] == 0, "auto: a flat-out replay infers every frame"
    for key in ("overhead_p50_ms", "max_ai_throughput_ratio_median_round", "slow_display_fps_pipelined"):
        assert r["checks"][key] is not None
    assert r["peak_rss_mb"] > 0
    assert "checks:" in out.stdout and "naive" in out.stdout and "what users feel" in out.stdout
