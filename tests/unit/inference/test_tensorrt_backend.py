"""TensorRT backend: unavailable here (no tensorrt/pycuda) must fail clearly and fall back."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge.errors import BackendUnavailableError
from edge.inference import base as backend_mod
from edge.inference.base import ModelIdentity, SessionOptions, available_backends, get_backend
from edge.inference.tensorrt_backend import TensorRTBackend, TensorRTOptions
from tests.support.paths import MODELS, REPO

TRT_SKIP = "TensorRT is not installed (needs an NVIDIA GPU and JetPack or NVIDIA's wheels)"


def _trt_missing() -> bool:
    ok, _ = TensorRTBackend().is_available()
    return not ok


needs_no_trt = pytest.mark.skipif(not _trt_missing(), reason="TensorRT is available on this machine")


@needs_no_trt
def test_is_available_names_what_to_install() -> None:
    ok, why = TensorRTBackend().is_available()
    assert ok is False
    assert "tensorrt" in why and "pycuda" in why
    assert "not installed:" in why


@needs_no_trt
def test_auto_falls_back_to_onnxruntime_and_logs_why(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_mod, "_LOGGED_FALLBACKS", set())
    with caplog.at_level(logging.INFO, logger="edge.inference.base"):
        backend = get_backend("auto")
        get_backend("auto")
    assert backend.name == "onnxruntime"
    msgs = [r.getMessage() for r in caplog.records if "TensorRT backend unavailable" in r.getMessage()]
    assert len(msgs) == 1  # once, not per call
    assert "pycuda" in msgs[0] and msgs[0].endswith("; using ONNX Runtime")
    assert caplog.records[0].levelno == logging.INFO


@needs_no_trt
def test_explicit_tensorrt_raises_with_reason() -> None:
    with pytest.raises(
        BackendUnavailableError, match=r"'tensorrt' is not available here: needs the tensorrt and pycuda"
    ):
        get_backend("tensorrt")


def test_tensorrt_is_registered() -> None:
    assert "tensorrt" in available_backends()
    assert "onnxruntime" in available_backends()


@needs_no_trt
def test_build_engine_cli_exits_2_naming_tensorrt(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "models",
            "build-engine",
            str(MODELS / "us-quality"),
            "--cache",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "TensorRT is not available" in proc.stderr
    assert "tensorrt and pycuda" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_build_engine_cli_checks_the_hash_first(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(MODELS / "us-quality", folder)
    f = folder / "us-quality-int8.onnx"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "models", "build-engine", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "does not match" in proc.stderr


# --- these need TensorRT and a CUDA GPU -------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_and_run_engine_matches_onnxruntime(tmp_path: Path, precision: str) -> None:
    pytest.importorskip("tensorrt", reason=TRT_SKIP)
    pytest.importorskip("pycuda.driver", reason=TRT_SKIP)
    from edge.inference.engine_cache import build_engine, engine_files
    from edge.inference.manifest import load_manifest
    from edge.inference.onnxruntime_backend import OnnxRuntimeBackend
    from edge.inference.tensorrt_backend import device_info

    package = load_manifest(MODELS / "us-quality")
    m = package.manifest
    onnx_path, _, sha = package.verified_file("int8" if precision == "int8" else "fp32")
    identity = ModelIdentity.of(m, sha, precision)
    files = engine_files(identity, device_info(), tmp_path)
    build_engine(onnx_path, files.engine, files.timing_cache, precision, 256)
    assert files.engine.is_file() and files.timing_cache.is_file()

    backend = TensorRTBackend(TensorRTOptions(cache_dir=tmp_path))
    trt_session = backend.open(onnx_path, SessionOptions(), identity)  # maps the ONNX to the cached engine
    assert trt_session.provider.startswith("TensorRT ")
    ort_session = OnnxRuntimeBackend().open(onnx_path, SessionOptions(providers=("CPUExecutionProvider",)))
    x = np.random.default_rng(0).standard_normal(m.input.shape).astype(np.float32)
    got = trt_session.run({"input": x})[0]
    want = ort_session.run({"input": x})[0]
    assert got.shape == want.shape == (1, 5)
    tol = {"fp32": 1e-3, "fp16": 5e-2, "int8": 0.5}[precision]
    np.testing.assert_allclose(got, want, atol=tol)


def test_onnx_without_cached_engine_says_build_engine(tmp_path: Path) -> None:
    pytest.importorskip("tensorrt", reason=TRT_SKIP)
    pytest.importorskip("pycuda.driver", reason=TRT_SKIP)
    from edge.inference.engine_cache import EngineNotBuiltError

    backend = TensorRTBackend(TensorRTOptions(cache_dir=tmp_path))
    with pytest.raises(EngineNotBuiltError, match="edge models build-engine"):
        backend.open(MODELS / "us-quality" / "us-quality-fp32.onnx", SessionOptions())


def test_auto_runs_on_onnxruntime_while_no_engine_is_built(
    tiny_classifier: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Jetson with TensorRT but no engine built yet still runs, and says what to do."""
    import edge.inference.model as model_mod
    from edge.inference.engine_cache import EngineNotBuiltError

    real = model_mod.get_backend

    class NoEngineYet:
        name = "tensorrt"

        def open(self, path: Path, options: object, identity: object = None) -> object:
            raise EngineNotBuiltError(f"no TensorRT engine for {path.name}: run edge models build-engine")

    monkeypatch.setattr(
        model_mod, "get_backend", lambda name: NoEngineYet() if name == "auto" else real(name)
    )
    with caplog.at_level("INFO"):
        m = model_mod.LoadedModel(tiny_classifier())
    assert m.info.backend == "onnxruntime"
    assert "run edge models build-engine" in caplog.text
    monkeypatch.setattr(model_mod, "get_backend", lambda name: NoEngineYet())
    with pytest.raises(EngineNotBuiltError):
        model_mod.LoadedModel(tiny_classifier(name="again"), backend="tensorrt")


def test_runtime_engine_lookup_is_the_engine_files_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend looks up exactly the file `engine_files` names, in its TensorRTOptions cache.
    Only the GPU's description is given here (no GPU to ask); TensorRT itself is not involved."""
    import edge.inference.tensorrt_backend as trt_mod
    from edge.inference.engine_cache import DeviceInfo, EngineNotBuiltError, engine_files
    from edge.inference.manifest import sha256_file

    orin = DeviceInfo("10.3.0", "Orin (nvgpu)", "8.7", 16)
    monkeypatch.setattr(trt_mod, "device_info", lambda device=0: orin)
    onnx_path = MODELS / "us-quality" / "us-quality-fp32.onnx"
    identity = ModelIdentity("us-quality", sha256_file(onnx_path), "fp32")
    files = engine_files(identity, orin, tmp_path)
    backend = TensorRTBackend(TensorRTOptions(cache_dir=tmp_path))
    with pytest.raises(EngineNotBuiltError) as e:
        backend.engine_for(onnx_path, identity)
    assert f"expected {files.engine}." in str(e.value)
    assert f"--precision fp32 --cache {tmp_path}" in str(e.value)
    files.engine.write_bytes(b"not an engine; only looked up")
    assert backend.engine_for(onnx_path, identity) == files.engine
    # Without an identity: the file's own sha256, its stem as the name, fp32.
    stem = engine_files(ModelIdentity(onnx_path.stem, identity.sha256, "fp32"), orin, tmp_path)
    assert stem.engine.name.startswith("us-quality-fp32-fp32-") and stem.key.digest == files.key.digest
    monkeypatch.setenv("EDGE_ENGINE_CACHE", str(tmp_path))
    assert TensorRTBackend().engine_for(onnx_path, identity) == files.engine


@needs_no_trt
def test_a_backend_given_as_an_object_is_checked_too(tiny_classifier: Callable[..., Path]) -> None:
    import edge.inference.model as model_mod

    backend = TensorRTBackend(TensorRTOptions(cache_dir=Path("x")))
    with pytest.raises(BackendUnavailableError, match=r"'tensorrt' is not available here: needs the"):
        model_mod.LoadedModel(tiny_classifier(), backend=backend)
