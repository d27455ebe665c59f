"""Engine cache keys, file names and buffer specs: pure Python, no TensorRT needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError
from edge.inference.engine_cache import (
    EngineKey,
    buffer_specs,
    default_cache_dir,
    engine_path,
    manifest_buffer_specs,
    slug,
    timing_cache_path,
)
from edge.inference.manifest import load_manifest
from tests.support.paths import MODELS

KEY = EngineKey(
    model_name="us-quality",
    model_sha256="62767f141c7408c39246b99b5fcf88f526192e98a5000e18872c454682eeca88",
    precision="int8",
    trt_version="10.3.0",
    gpu_name="Orin (nvgpu)",
    compute_capability="8.7",
    sm_count=16,
)


def test_key_is_stable() -> None:
    again = EngineKey(**dataclasses.asdict(KEY))
    assert again.digest == KEY.digest
    assert len(KEY.digest) == 64
    assert engine_path(Path("/c"), again) == engine_path(Path("/c"), KEY)


@pytest.mark.parametrize(
    "field, value",
    [
        ("model_sha256", "0" * 64),
        ("precision", "fp16"),
        ("trt_version", "10.7.0"),
        ("gpu_name", "NVIDIA H100 80GB HBM3"),
        ("compute_capability", "9.0"),
        ("sm_count", 8),
    ],
)
def test_key_changes_with_each_field(field: str, value: object) -> None:
    other = dataclasses.replace(KEY, **{field: value})
    assert other.digest != KEY.digest
    assert other.file_name != KEY.file_name


def test_model_name_only_labels_the_file() -> None:
    renamed = dataclasses.replace(KEY, model_name="other")
    assert renamed.digest == KEY.digest
    assert renamed.file_name != KEY.file_name


def test_readable_file_name(tmp_path: Path) -> None:
    path = engine_path(tmp_path, KEY)
    assert path.parent == tmp_path
    assert path.name == f"us-quality-int8-trt10.3.0-orin-nvgpu-sm87-{KEY.digest[:12]}.engine"


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        dataclasses.replace(KEY, precision="int4")


def test_timing_cache_is_per_trt_and_gpu(tmp_path: Path) -> None:
    a = timing_cache_path(tmp_path, "10.3.0", "Orin (nvgpu)", "8.7")
    assert a.name == "timing-trt10.3.0-orin-nvgpu-sm87.cache"
    assert a != timing_cache_path(tmp_path, "10.4.0", "Orin (nvgpu)", "8.7")
    assert a != timing_cache_path(tmp_path, "10.3.0", "NVIDIA H100", "9.0")


def test_slug() -> None:
    assert slug("NVIDIA Jetson AGX Orin (64GB)") == "nvidia-jetson-agx-orin-64gb"
    assert slug("   ") == "unknown"


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGE_ENGINE_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("EDGE_ENGINE_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "scanner-edge" / "engines"


def test_buffer_specs_from_bundled_manifest() -> None:
    m = load_manifest(MODELS / "us-quality").manifest
    inp, out = manifest_buffer_specs(m)
    assert (inp.name, inp.shape, inp.dtype, inp.is_input) == ("input", (1, 1, 128, 128), np.float32, True)
    assert inp.nbytes == 128 * 128 * 4
    assert (out.name, out.shape, out.dtype, out.is_input) == ("logits", (1, 5), np.float32, False)


def test_buffer_specs_need_resolved_output_shapes() -> None:
    m = load_manifest(MODELS / "us-quality").manifest
    assert buffer_specs(m.input, {"a": (1, 84, 8400)})[1].shape == (1, 84, 8400)
    with pytest.raises(ModelError, match="unresolved"):
        buffer_specs(m.input, {"a": (1, -1)})


def test_network_plan_follows_the_tensorrt_10_documentation() -> None:
    from edge.inference.engine_cache import network_plan

    trt10 = {"has_strongly_typed": True, "has_fp16_flag": True, "has_int8_flag": True}
    # Q/DQ INT8: strongly typed, no precision flags ("should not be specified").
    assert network_plan("int8", **trt10) == (True, ())
    assert network_plan("fp16", **trt10) == (False, ("FP16",))
    assert network_plan("fp32", **trt10) == (False, ())
    trt8 = {"has_strongly_typed": False, "has_fp16_flag": True, "has_int8_flag": True}
    assert network_plan("int8", **trt8) == (False, ("INT8",))
    trt11 = {"has_strongly_typed": True, "has_fp16_flag": False, "has_int8_flag": False}
    assert network_plan("int8", **trt11) == (True, ())
    with pytest.raises(ModelError, match=r"no BuilderFlag\.FP16 \(removed in TensorRT 11"):
        network_plan("fp16", **trt11)
    with pytest.raises(ModelError, match="precision must be one of"):
        network_plan("int4", **trt10)
