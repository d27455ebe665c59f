"""Engine cache keys, file names and buffer specs: pure Python, no TensorRT needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError
from edge.inference.base import ModelIdentity
from edge.inference.engine_cache import (
    DeviceInfo,
    EngineKey,
    buffer_specs,
    default_cache_dir,
    engine_files,
    manifest_buffer_specs,
    slug,
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
    assert again.file_name == KEY.file_name


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


IDENTITY = ModelIdentity("us-quality", KEY.model_sha256, "int8", (("input", (1, 1, 128, 128)),))
ORIN = DeviceInfo("10.3.0", "Orin (nvgpu)", "8.7", 16)


def test_engine_files_key_and_readable_names(tmp_path: Path) -> None:
    files = engine_files(IDENTITY, ORIN, tmp_path)
    assert files.key == KEY
    assert files.cache_dir == tmp_path and files.engine.parent == tmp_path
    assert files.engine.name == f"us-quality-int8-trt10.3.0-orin-nvgpu-sm87-{KEY.digest[:12]}.engine"
    assert files.timing_cache == tmp_path / "timing-trt10.3.0-orin-nvgpu-sm87.cache"


def test_engine_files_default_to_the_engine_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGE_ENGINE_CACHE", str(tmp_path / "env"))
    files = engine_files(IDENTITY, ORIN)
    assert files.cache_dir == tmp_path / "env" and files.engine.parent == tmp_path / "env"
    assert files.engine.name == engine_files(IDENTITY, ORIN, tmp_path).engine.name


def test_engine_differs_per_model_file_and_precision_not_input_shape(tmp_path: Path) -> None:
    base = engine_files(IDENTITY, ORIN, tmp_path)
    other_file = dataclasses.replace(IDENTITY, sha256="0" * 64)
    fp32 = dataclasses.replace(IDENTITY, precision="fp32")
    assert engine_files(other_file, ORIN, tmp_path).engine != base.engine
    assert engine_files(fp32, ORIN, tmp_path).engine != base.engine
    same = engine_files(dataclasses.replace(IDENTITY, input_shapes=()), ORIN, tmp_path)
    assert same.engine == base.engine
    assert engine_files(other_file, ORIN, tmp_path).timing_cache == base.timing_cache  # one per GPU


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        dataclasses.replace(KEY, precision="int4")


def test_timing_cache_is_per_trt_and_gpu(tmp_path: Path) -> None:
    a = engine_files(IDENTITY, ORIN, tmp_path).timing_cache
    assert a.name == "timing-trt10.3.0-orin-nvgpu-sm87.cache"
    newer = dataclasses.replace(ORIN, trt_version="10.4.0")
    assert a != engine_files(IDENTITY, newer, tmp_path).timing_cache
    h100 = DeviceInfo("10.3.0", "NVIDIA H100", "9.0", 132)
    assert a != engine_files(IDENTITY, h100, tmp_path).timing_cache


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
