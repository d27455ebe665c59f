"""Fixture wiring shared by all tests; what the fixtures build lives in ``tests.support``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Re-exported for tests that still import these from here (tests/unit/tools); import them from
# tests.support.paths and tests.support.onnx_models instead.
from tests.support.onnx_models import classifier_folder, classifier_model, write_model_folder, yolo_model
from tests.support.paths import MODELS, REPO

__all__ = ["MODELS", "REPO", "classifier_model", "write_model_folder", "yolo_model"]


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
