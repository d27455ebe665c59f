"""Fixture wiring for the toolchain tests; what the fixtures build lives in ``pocus_standin``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.tools.pocus_standin import write_pocus_standin


@pytest.fixture(scope="session")
def pocus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic pocus_dev stand-in, written once per test session."""
    return write_pocus_standin(tmp_path_factory.mktemp("pocus") / "data")
