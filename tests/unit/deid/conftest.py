"""Fixtures for the de-identification tests: a device key, the vendor files of the installed pydicom-data
(``data_store``) and pydicom packages (``tests.support.dicom``), and synthetic marker studies
(``tools/deid/markers.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.deid.header import DeidOptions
from tests.support.dicom import installed_dicom
from tools.deid.markers import Planted, marker_study, save

KEY = bytes(range(32))


@pytest.fixture
def options() -> DeidOptions:
    return DeidOptions(key=KEY)


@pytest.fixture(scope="session")
def vendor_file() -> Callable[[str], Path]:
    """A real file by name from pydicom-data or pydicom's own test files; skip if neither has it."""
    return installed_dicom


@pytest.fixture
def marker_files(tmp_path: Path) -> tuple[list[Path], Planted]:
    """Two files of one study with markers everywhere, written under tmp_path/in."""
    datasets, planted = marker_study(2)
    return [save(ds, tmp_path / "in" / f"DOE^JOHN_{k}.dcm") for k, ds in enumerate(datasets)], planted
