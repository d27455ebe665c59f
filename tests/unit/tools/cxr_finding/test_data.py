"""Patients from the cxr_kermany file names, and the folder layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.tools.cxr_standins import write_kermany_standin
from tools.cxr_finding.data import load, patient_of


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person1000_bacteria_2931.jpeg", "person1000"),
        ("person1000_virus_1681.jpeg", "person1000"),
        ("IM-0640-0001-0001.jpeg", "IM-0640"),
        ("IM-0640-0001-0002.jpeg", "IM-0640"),
        ("NORMAL2-IM-1018-0001.jpeg", "NORMAL2-IM-1018"),
    ],
)
def test_patient_of_file_names(name: str, patient: str) -> None:
    assert patient_of(name) == patient


def test_a_name_without_a_patient_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"scan_17\.jpeg"):
        patient_of("scan_17.jpeg")


def test_load_reads_both_folders_and_caches(tmp_path: Path) -> None:
    data = write_kermany_standin(tmp_path / "k", per_class=3)
    films = load(data, tmp_path / "cache")
    assert films.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert films.images.shape == (6, 224, 224)
    assert films.patients[0] == "IM-0000" and films.patients[3].startswith("person")
    assert (load(data, tmp_path / "cache").images == films.images).all()


def test_a_missing_class_folder_is_named(tmp_path: Path) -> None:
    data = write_kermany_standin(tmp_path / "k", per_class=1)
    for f in (data / "NORMAL").iterdir():
        f.unlink()
    (data / "NORMAL").rmdir()
    with pytest.raises(FileNotFoundError, match="NORMAL"):
        load(data, tmp_path / "cache")
