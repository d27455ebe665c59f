"""edge bench --plot: the two charts are written from a bench result, as readable PNGs."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from edge.errors import EdgeError
from edge.runtime.charts import CPU_PNG, LATENCY_PNG, plot_bench
from edge.runtime.cpu import STAGES

pytestmark = pytest.mark.tools
pytest.importorskip("matplotlib", reason="matplotlib is not installed (tools set: scripts/setup.sh --tools)")


def _run(values: list[float], total: float) -> dict[str, object]:
    per = {s: total / len(STAGES) for s in STAGES} | {"total": total}
    return {"capture_to_screen_values": values, "cpu": {"ms_per_frame": per}}


def _result() -> dict[str, object]:
    fast, slow = [5.0 + i % 7 for i in range(100)], [20.0 + i for i in range(100)]
    return {
        "scenarios": {
            "paced": {"pipelined": _run(fast, 6.0), "naive": _run(slow, 5.0)},
            "paced_loaded": {"pipelined": _run(fast, 6.5), "naive": _run(slow, 5.5)},
            "max": {"pipelined": _run([], 4.0), "naive": _run([], 4.0)},
        }
    }


def test_both_charts_are_written_as_pngs(tmp_path: Path) -> None:
    paths = plot_bench(_result(), tmp_path / "charts")
    assert [p.name for p in paths] == [LATENCY_PNG, CPU_PNG]
    for p in paths:
        image = cv2.imread(str(p))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 400


def test_a_result_without_figures_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="capture-to-screen"):
        plot_bench({"scenarios": {}}, tmp_path)
