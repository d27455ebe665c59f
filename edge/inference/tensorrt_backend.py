"""TensorRT backend: a serialized engine run through the TensorRT 10 name-based tensor API.

Needs the ``tensorrt`` and ``pycuda`` Python packages and a CUDA GPU (JetPack on Jetson,
NVIDIA's wheels on x86). Both are imported inside functions, so this module imports anywhere
and ``is_available()`` says what is missing.

``open()`` takes an engine file (``.engine``/``.plan``) or the ONNX file that LoadedModel
verified; for ONNX it looks up the engine that ``edge models build-engine`` cached for this
model sha256, precision, TensorRT version and GPU (see :mod:`edge.inference.engine_cache`).

TensorRT 10 Python API used here:

* ``trt.Runtime.deserialize_cuda_engine``:
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Runtime.html
* ``ICudaEngine.num_io_tensors / get_tensor_name / get_tensor_mode / get_tensor_shape /
  get_tensor_dtype / create_execution_context``:
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Engine.html
* ``IExecutionContext.set_input_shape / get_tensor_shape / set_tensor_address /
  execute_async_v3``:
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/ExecutionContext.html
* The name-based buffer allocation pattern (``pagelocked_empty``, ``mem_alloc``,
  ``set_tensor_address``, ``execute_async_v3``) from the 8.x to 10.x migration guide:
  https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-8x-to-10x-python-api-patterns.html
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BackendUnavailableError, ModelError
from edge.inference.base import SessionOptions
from edge.inference.engine_cache import (
    BufferSpec,
    EngineKey,
    EngineNotBuiltError,
    default_cache_dir,
    engine_path,
)

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "needs the tensorrt and pycuda Python packages (JetPack on Jetson, or NVIDIA's wheels on x86 "
    "with a CUDA GPU)"
)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def _import() -> tuple[Any, Any]:
    """(tensorrt, pycuda.driver), or BackendUnavailableError naming what to install."""
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(f"{INSTALL_HINT}; not installed: {exc}") from exc
    return trt, cuda


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    trt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    sm_count: int

    def key(self, model_name: str, model_sha256: str, precision: str) -> EngineKey:
        return EngineKey(
            model_name=model_name,
            model_sha256=model_sha256,
            precision=precision,
            trt_version=self.trt_version,
            gpu_name=self.gpu_name,
            compute_capability=self.compute_capability,
            sm_count=self.sm_count,
        )


def device_info(device: int = 0) -> DeviceInfo:
    """TensorRT version and the GPU's name, compute capability and SM count (via pycuda)."""
    trt, cuda = _import()
    cuda.init()
    dev = cuda.Device(device)
    major, minor = dev.compute_capability()
    sms = int(dev.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT))
    return DeviceInfo(str(trt.__version__), str(dev.name()), f"{major}.{minor}", sms)


class TensorRTSession:
    """One engine, one execution context, one CUDA stream, buffers allocated once."""

    backend = "tensorrt"

    def __init__(self, engine_file: Path, options: SessionOptions) -> None:
        trt, cuda = _import()
        self._cuda = cuda
        cuda.init()
        self._device = cuda.Device(0)
        # The primary context, pushed around every call: the session may run on any thread.
        self._ctx = self._device.retain_primary_context()
        self._lock = threading.Lock()
        self._ctx.push()
        try:
            self._setup(trt, cuda, engine_file, options)
        finally:
            cuda.Context.pop()
        self.provider = f"TensorRT {trt.__version__} on {self._device.name()}"

    def _setup(self, trt: Any, cuda: Any, engine_file: Path, options: SessionOptions) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        try:
            blob = engine_file.read_bytes()
        except OSError as exc:
            raise ModelError(f"{engine_file}: cannot read TensorRT engine: {exc.strerror or exc}") from exc
        self._engine = self._runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            raise ModelError(
                f"{engine_file}: TensorRT cannot deserialize this engine (built by another TensorRT "
                "version or for another GPU?); rebuild it with `edge models build-engine`"
            )
        self._context = self._engine.create_execution_context()
        wanted = dict(options.input_shapes)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        for name in inputs:
            shape = tuple(self._engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                if name not in wanted:
                    raise ModelError(
                        f"{engine_file}: input {name!r} has dynamic shape {list(shape)}; no shape given"
                    )
                self._context.set_input_shape(name, tuple(wanted[name]))
        specs: list[BufferSpec] = []
        for name in names:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            specs.append(BufferSpec(name, shape, dtype, name in inputs))
        self.buffer_specs = tuple(specs)
        self._host: dict[str, np.ndarray] = {}
        self._dev: dict[str, Any] = {}
        for spec in specs:
            host = cuda.pagelocked_empty(spec.shape, spec.dtype)
            dev = cuda.mem_alloc(max(host.nbytes, 1))
            self._host[spec.name] = host
            self._dev[spec.name] = dev
            self._context.set_tensor_address(spec.name, int(dev))
        self._stream = cuda.Stream()
        self.input_names = tuple(inputs)
        self.output_names = tuple(outputs)
        self.input_shapes = {s.name: s.shape for s in specs if s.is_input}

    def run(self, inputs: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        cuda = self._cuda
        with self._lock:
            self._ctx.push()
            try:
                for name in self.input_names:
                    if name not in inputs:
                        raise ModelError(f"TensorRT session: input {name!r} not given")
                    host = self._host[name]
                    arr = np.asarray(inputs[name])
                    if arr.shape != host.shape:
                        raise ModelError(
                            f"TensorRT session: input {name!r} has shape {list(arr.shape)}, "
                            f"the engine expects {list(host.shape)}"
                        )
                    np.copyto(host, arr, casting="same_kind")
                    cuda.memcpy_htod_async(self._dev[name], host, self._stream)
                if not self._context.execute_async_v3(self._stream.handle):
                    raise ModelError("TensorRT execute_async_v3 failed (see the TensorRT log)")
                for name in self.output_names:
                    cuda.memcpy_dtoh_async(self._host[name], self._dev[name], self._stream)
                self._stream.synchronize()
                return [self._host[name].copy() for name in self.output_names]
            finally:
                cuda.Context.pop()


class TensorRTBackend:
    name = "tensorrt"

    def is_available(self) -> tuple[bool, str]:
        try:
            trt, cuda = _import()
        except BackendUnavailableError as exc:
            return False, str(exc)
        try:
            cuda.init()
            count = cuda.Device.count()
        except Exception as exc:  # pycuda raises its own LogicError/RuntimeError
            return False, f"TensorRT {trt.__version__} is installed but CUDA cannot start: {exc}"
        if count < 1:
            return False, f"TensorRT {trt.__version__} is installed but there is no CUDA device"
        return True, f"TensorRT {trt.__version__} on {cuda.Device(0).name()}"

    def engine_for(self, model_path: Path, options: SessionOptions) -> Path:
        """The engine to load for ``model_path``: itself if it is an engine, else the cached
        engine built from this ONNX for this precision, TensorRT version and GPU."""
        model_path = Path(model_path)
        if model_path.suffix.lower() in ENGINE_SUFFIXES:
            return model_path
        if model_path.suffix.lower() != ".onnx":
            raise ModelError(f"{model_path}: TensorRT backend needs an engine file or an ONNX model")
        from edge.inference.manifest import sha256_file

        sha = options.model_sha256 or sha256_file(model_path)
        precision = options.precision or "fp32"
        name = options.model_name or model_path.stem
        cache = Path(options.engine_cache_dir) if options.engine_cache_dir else default_cache_dir()
        key = device_info().key(name, sha, precision)
        path = engine_path(cache, key)
        if not path.is_file():
            raise EngineNotBuiltError(
                f"{model_path}: no TensorRT engine cached for {name} {precision} on "
                f"{key.gpu_name} (sm {key.compute_capability}, TensorRT {key.trt_version}); "
                f"expected {path}. Build it with: edge models build-engine <model folder> "
                f"--precision {precision} --cache {cache}"
            )
        return path

    def open(self, model_path: Path, options: SessionOptions) -> TensorRTSession:
        return TensorRTSession(self.engine_for(model_path, options), options)
