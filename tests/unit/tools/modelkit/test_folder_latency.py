"""Latency runners for every file of a published folder (no timing is asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


def test_one_runner_per_file_and_cpu_alternate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.unit.tools.cxr_standins import write_cxr_dev_standin
    from tools.cxr_lungs.__main__ import main as lungs
    from tools.modelkit.folder_latency import main, runners

    data = write_cxr_dev_standin(tmp_path / "d", films=6, patients=3)
    out = tmp_path / "m"
    assert (
        lungs(
            [
                "--tiny",
                "--data",
                str(data),
                "--out",
                str(out),
                "--work",
                str(tmp_path / "w"),
                "--cache",
                str(tmp_path / "c"),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    r = runners(out)
    assert set(r) == {"cxr-lungs fp32", "cxr-lungs int8", "cxr-lungs int8-cpu"}
    out_ = r["cxr-lungs int8-cpu"](np.zeros((1, 1, 128, 128), np.float32))
    assert isinstance(out_, list) and out_[0].shape == (1, 6, 64)
    assert main([str(out), "--runs", "3"]) == 0
    assert "cxr-lungs int8-cpu" in capsys.readouterr().out
