"""Fixture wiring shared by all tests; what the fixtures build lives in ``tests.support``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.onnx_models import classifier_folder


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The toolchain's tests (tests/unit/tools) carry the ``tools`` marker too: CI runs the README's
    test command on the test set alone, then ``-m tools`` once the tools set is installed."""
    for item in items:
        if item.nodeid.startswith("tests/unit/tools/"):
            item.add_marker(pytest.mark.tools)


@pytest.fixture(autouse=True)
def _device_key_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs in tests make their de-identification key under pytest's temp folder, never in the
    user's ~/.config (subprocesses inherit the variable)."""
    monkeypatch.setenv("EDGE_DEID_KEY", str(tmp_path_factory.getbasetemp() / "deid.key"))


@pytest.fixture
def tiny_classifier(tmp_path: Path) -> Callable[..., Path]:
    """``make(labels=..., name=..., **manifest)``: a classification model folder under tmp_path."""

    def make(labels: tuple[str, ...] = ("ok", "bad"), name: str = "tiny-cls", **extra: Any) -> Path:
        return classifier_folder(tmp_path / name, labels, name, **extra)

    return make
