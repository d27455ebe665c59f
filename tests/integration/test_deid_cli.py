"""``edge deid IN OUT`` as a user runs it: a real process, a key file on disk, a folder of mixed files."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from tools.deid_markers import marker_study, save, text_leaks

REPO = Path(__file__).resolve().parents[2]
EDGE = [sys.executable, "-m", "edge"]


def edge(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("EDGE_DEID_KEY", None)
    return subprocess.run(
        [*EDGE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def _us1() -> Path:
    data_store = pytest.importorskip("data_store", reason="pydicom-data is not installed")
    path = Path(data_store.__file__).parent / "data" / "US1_UNCR.dcm"
    if not path.is_file():
        pytest.skip("US1_UNCR.dcm is not installed locally (the pydicom-data package)")
    return path


def test_folder_run_key_summary_and_fail_closed(tmp_path: Path) -> None:
    datasets, planted = marker_study(2)
    src = tmp_path / "in" / "DOE^JOHN"
    for k, ds in enumerate(datasets):
        save(ds, src / f"IM{k}.dcm")
    shutil.copy(_us1(), src / "US1_UNCR.dcm")  # no regions, annotation unknown: must be refused
    key = tmp_path / "keys" / "deid.key"
    out = tmp_path / "out"

    run = edge("deid", src, out, "--key", key, cwd=tmp_path)
    assert run.returncode == 1, run.stderr  # something was refused
    lines = run.stdout.splitlines()
    assert sum(line.startswith("WRITTEN") for line in lines) == 2
    assert any(line.startswith("REFUSED") and "US1_UNCR.dcm" in line for line in lines)
    assert lines[-1] == "total: 3 files, written 2, refused 1, skipped 0, errors 0"
    assert "created a new device key" in run.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_size == 32
    outputs = sorted(out.glob("*.dcm"))
    assert len(outputs) == 2 and all(p.name.startswith("2.25.") for p in outputs)
    for p in outputs:
        assert text_leaks(p.read_bytes(), planted) == []
        assert pydicom.dcmread(p).PatientIdentityRemoved == "YES"

    again = edge("deid", src, tmp_path / "out2", "--key", key, cwd=tmp_path)  # same key: same names
    assert sorted(p.name for p in (tmp_path / "out2").glob("*.dcm")) == [p.name for p in outputs]
    assert "created a new device key" not in again.stderr


def test_config_rectangles_dates_remove_and_bad_input(tmp_path: Path) -> None:
    src = _us1()
    config = tmp_path / "edge.toml"
    config.write_text(
        '[deid]\nkey_file = "deid.key"\ndates = "remove"\n'
        '[deid.probe_rects]\n"LOGIQ 700" = [[100, 50, 539, 429]]\n'
    )
    run = edge("deid", src, tmp_path / "one.dcm", "--config", config, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pixels cleaned" in run.stdout and (tmp_path / "deid.key").is_file()
    ds = pydicom.dcmread(tmp_path / "one.dcm")
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert ds.pixel_array[:50].max() == 0 and ds.BurnedInAnnotation == "NO"

    bad = edge(
        "deid",
        src,
        tmp_path / "o",
        "--key",
        tmp_path / "deid.key",
        "--keep-private",
        "0010,01,X",
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "group 0010 is not a private group" in bad.stderr
    missing = edge("deid", tmp_path / "nope", tmp_path / "o", "--key", tmp_path / "deid.key", cwd=tmp_path)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
