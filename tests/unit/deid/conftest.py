"""Fixtures for the de-identification tests: a device key, the vendor files of the installed pydicom-data
(``data_store``) and pydicom packages, and synthetic marker studies (``tools/deid_markers.py``).

Nothing here reads /work/shared or the network; pydicom is never asked to fetch a file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from edge.deid.header import DeidOptions
from tools.deid_markers import Planted, marker_study, save

KEY = bytes(range(32))


@pytest.fixture
def options() -> DeidOptions:
    return DeidOptions(key=KEY)


@pytest.fixture(scope="session")
def vendor_file() -> Callable[[str], Path]:
    """A real file by name from pydicom-data or pydicom's own test files; skip if neither has it."""
    folders = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import data_store

        folders.insert(0, Path(data_store.__file__).parent / "data")
    except ImportError:
        pass

    def find(name: str) -> Path:
        for folder in folders:
            if (folder / name).is_file():
                return folder / name
        pytest.skip(f"{name} is not installed locally (pydicom-data)")

    return find


@pytest.fixture
def marker_files(tmp_path: Path) -> tuple[list[Path], Planted]:
    """Two files of one study with markers everywhere, written under tmp_path/in."""
    datasets, planted = marker_study(2)
    return [save(ds, tmp_path / "in" / f"DOE^JOHN_{k}.dcm") for k, ds in enumerate(datasets)], planted
