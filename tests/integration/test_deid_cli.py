"""``edge deid IN OUT`` as a user runs it: a real process, a key file on disk, a folder of mixed files."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pydicom

from tests.support.dicom import installed_dicom
from tests.support.paths import REPO, env_without, run_edge
from tools.deid.markers import marker_study, save, text_leaks


def edge(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The key comes from --key or the config here, never from the tests' EDGE_DEID_KEY."""
    env = env_without("EDGE_DEID_KEY", PYTHONPATH=str(REPO))
    return run_edge(*args, cwd=cwd, timeout=300, env=env)


def test_folder_run_key_summary_and_fail_closed(tmp_path: Path) -> None:
    datasets, planted = marker_study(2)
    src = tmp_path / "in" / "DOE^JOHN"
    for k, ds in enumerate(datasets):
        save(ds, src / f"IM{k}.dcm")
    # No regions and the annotation unknown: must be refused.
    shutil.copy(installed_dicom("US1_UNCR.dcm"), src / "US1_UNCR.dcm")
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
    src = installed_dicom("US1_UNCR.dcm")
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
