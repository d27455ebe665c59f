"""TensorRT backend: a serialized engine run through the TensorRT 10 name-based tensor API.

Needs the ``tensorrt`` and ``pycuda`` Python packages and a CUDA GPU (JetPack on Jetson,
NVIDIA's wheels on x86). Both are imported inside functions, so this module imports anywhere
and ``is_available()`` says what is missing.

``open()`` takes an engine file (``.engine``/``.plan``) or the ONNX file that LoadedModel
verified; for ONNX it looks up the engine that ``edge models build-engine`` cached for this
model sha256, precision, TensorRT version and GPU (see :mod:`edge.inference.engine_cache`).
TensorRT's own settings (the engine cache folder, the builder workspace) are a
:class:`TensorRTOptions` given to the backend, not part of the generic SessionOptions.

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
from edge.inference.base import ModelIdentity, SessionOptions
from edge.inference.engine_cache import BufferSpec, DeviceInfo, EngineNotBuiltError, engine_files

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
class TensorRTOptions:
    """TensorRT's own settings. The defaults are what the runtime uses: the engine cache from
    ``$EDGE_ENGINE_CACHE``, else ``~/.cache/scanner-edge/engines``."""

    cache_dir: Path | None = None  # None: engine_cache.default_cache_dir()
    workspace_mb: int = 1024  # builder memory pool, used when building an engine


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

    def __init__(self, engine_file: Path, input_shapes: Mapping[str, Sequence[int]] | None = None) -> None:
        """``input_shapes`` fixes the engine's dynamic inputs (the manifest's input shape)."""
        trt, cuda = _import()
        self._cuda = cuda
        cuda.init()
        self._device = cuda.Device(0)
        # The primary context, pushed around every call: the session may run on any thread.
        self._ctx = self._device.retain_primary_context()
        self._lock = threading.Lock()
        self._ctx.push()
        try:
            self._setup(trt, cuda, engine_file, dict(input_shapes or {}))
        finally:
            cuda.Context.pop()
        self.provider = f"TensorRT {trt.__version__} on {self._device.name()}"

    def _setup(self, trt: Any, cuda: Any, engine_file: Path, wanted: dict[str, Sequence[int]]) -> None:
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
        self.input_dtypes = {s.name: str(s.dtype) for s in specs if s.is_input}
        self.output_shapes = {s.name: s.shape for s in specs if not s.is_input}

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

    def __init__(self, options: TensorRTOptions | None = None) -> None:
        self.options = options or TensorRTOptions()

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

    def engine_for(self, model_path: Path, identity: ModelIdentity | None = None) -> Path:
        """The engine to load for ``model_path``: itself if it is an engine, else the cached
        engine built from this ONNX for this precision, TensorRT version and GPU. Without an
        ``identity`` the ONNX file's own sha256 and name are used, at fp32."""
        model_path = Path(model_path)
        if model_path.suffix.lower() in ENGINE_SUFFIXES:
            return model_path
        if model_path.suffix.lower() != ".onnx":
            raise ModelError(f"{model_path}: TensorRT backend needs an engine file or an ONNX model")
        if identity is None:
            from edge.inference.manifest import sha256_file

            identity = ModelIdentity(model_path.stem, sha256_file(model_path), "fp32")
        files = engine_files(identity, device_info(), self.options.cache_dir)
        key = files.key
        if not files.engine.is_file():
            raise EngineNotBuiltError(
                f"{model_path}: no TensorRT engine cached for {key.model_name} {key.precision} on "
                f"{key.gpu_name} (sm {key.compute_capability}, TensorRT {key.trt_version}); "
                f"expected {files.engine}. Build it with: edge models build-engine <model folder> "
                f"--precision {key.precision} --cache {files.cache_dir}"
            )
        return files.engine

    def open(
        self, model_path: Path, options: SessionOptions, identity: ModelIdentity | None = None
    ) -> TensorRTSession:
        """``options`` (providers, threads) mean nothing to TensorRT; its own are ``self.options``."""
        engine = self.engine_for(model_path, identity)
        return TensorRTSession(engine, dict(identity.input_shapes) if identity else None)
