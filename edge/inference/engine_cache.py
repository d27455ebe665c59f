"""TensorRT engine cache: keys, the engine and timing-cache paths, buffer shapes, the builder.

A serialized TensorRT engine is only valid for the TensorRT version and the GPU it was built
on, so, as in Holoscan's inference operator (which names engines after the GPU, compute
capability, SM count and TensorRT version), the cache key covers everything that makes an
engine unusable elsewhere: the model file's sha256, the precision, the TensorRT version, the
GPU name, its compute capability ("8.7" on Jetson Orin) and its SM count. Everything here but
:func:`build_engine` is pure Python and runs without TensorRT.

TensorRT 10 references:

* Builder / network / ONNX parser / builder config (``trt.Builder``, ``create_network(0)``,
  ``trt.OnnxParser``, ``set_memory_pool_limit``, ``build_serialized_network``):
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Builder.html,
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/BuilderConfig.html,
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/parsers/Onnx/pyOnnx.html
* Timing cache (``create_timing_cache``, ``set_timing_cache``, ``ITimingCache.serialize``):
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/BuilderConfig.html
* Explicit quantization (Q/DQ nodes in the ONNX, no calibrator; calibrators are deprecated since
  TensorRT 10.1): "Use explicit quantization with Strong Typing. Precision-control build flags
  are not required and should not be specified."
  https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/quantized-types-explicit-quantization.html,
  https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-quantized-types.html,
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/c-api/deprecated.html
* Strongly typed networks (``1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)`` to
  ``create_network``; layer precisions then come from the graph's types, Q/DQ included); weak
  typing is deprecated since TensorRT 10.12 and removed in 11, where the flag is accepted and
  ignored:
  https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Builder.html,
  https://docs.nvidia.com/deeplearning/tensorrt/latest/getting-started/release-notes-10/10.12.0.html
* The 10.x to 11.x Python migration page lists ``BuilderFlag.INT8`` (replaced by "explicit
  quantization with Q/DQ nodes") and ``BuilderFlag.FP16`` (replaced by "strong typing with
  ModelOpt AutoCast") as removed in TensorRT 11:
  https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html
* Q/DQ zero points must be 0 ("only symmetric quantization is supported"):
  https://docs.nvidia.com/deeplearning/tensorrt/api/c_api/classnvinfer1_1_1_i_dequantize_layer.html
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic_file import atomic_write
from edge.errors import BackendUnavailableError, ModelError
from edge.inference.base import ModelIdentity
from edge.inference.manifest import InputSpec, Manifest

log = logging.getLogger(__name__)

ENGINE_CACHE_ENV = "EDGE_ENGINE_CACHE"
ENGINE_SUFFIX = ".engine"
PRECISIONS = ("fp32", "fp16", "int8")


class EngineNotBuiltError(BackendUnavailableError):
    """TensorRT is here but no engine was built for this model, precision and GPU."""


def default_cache_dir() -> Path:
    """``$EDGE_ENGINE_CACHE``, else ``~/.cache/scanner-edge/engines``."""
    env = os.environ.get(ENGINE_CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "scanner-edge" / "engines"


def slug(text: str) -> str:
    """``"NVIDIA Jetson AGX Orin (64GB)"`` -> ``"nvidia-jetson-agx-orin-64gb"``."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "unknown"


@dataclass(frozen=True, slots=True)
class EngineKey:
    """Everything an engine depends on. ``model_name`` only makes the file name readable."""

    model_name: str
    model_sha256: str
    precision: str
    trt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    sm_count: int

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")

    @property
    def digest(self) -> str:
        """sha256 over every field that makes an engine unusable elsewhere (not the name)."""
        fields = asdict(self)
        del fields["model_name"]
        blob = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def file_name(self) -> str:
        cc = self.compute_capability.replace(".", "")
        return (
            f"{slug(self.model_name)}-{self.precision}-trt{self.trt_version}-{slug(self.gpu_name)}"
            f"-sm{cc}-{self.digest[:12]}{ENGINE_SUFFIX}"
        )


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The TensorRT version and GPU an engine is built on (``tensorrt_backend.device_info()``)."""

    trt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    sm_count: int


@dataclass(frozen=True, slots=True)
class EngineFiles:
    """Where one model's engine and this GPU's timing cache live."""

    key: EngineKey
    cache_dir: Path
    engine: Path  # e.g. us-quality-int8-trt10.3.0-orin-sm87-1a2b3c4d5e6f.engine
    timing_cache: Path  # e.g. timing-trt10.3.0-orin-sm87.cache


def engine_files(identity: ModelIdentity, device: DeviceInfo, cache_dir: Path | None = None) -> EngineFiles:
    """The engine for ``identity`` (model name, sha256, precision) on ``device``, in ``cache_dir``
    (None: :func:`default_cache_dir`). The one place engine paths are made: the runtime's lookup,
    ``edge models build-engine`` and ``tools.modelkit.trt_check`` all come here, so they always agree.

    The timing cache is one per (TensorRT version, GPU, compute capability), shared by all models:
    kernel timings depend on the GPU and TensorRT, not on the model.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = EngineKey(
        model_name=identity.name,
        model_sha256=identity.sha256,
        precision=identity.precision,
        trt_version=device.trt_version,
        gpu_name=device.gpu_name,
        compute_capability=device.compute_capability,
        sm_count=device.sm_count,
    )
    cc = device.compute_capability.replace(".", "")
    timing = cache / f"timing-trt{device.trt_version}-{slug(device.gpu_name)}-sm{cc}.cache"
    return EngineFiles(key, cache, cache / key.file_name, timing)


@dataclass(frozen=True, slots=True)
class BufferSpec:
    """One host/device buffer of a TensorRT session: tensor name, shape, numpy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    is_input: bool

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def buffer_specs(
    input_spec: InputSpec,
    outputs: Mapping[str, Sequence[int]],
    output_dtype: str | np.dtype[Any] = "float32",
) -> tuple[BufferSpec, ...]:
    """Host buffers from the manifest's input (name, shape, dtype) and the outputs' shapes."""
    specs = [BufferSpec(input_spec.name, tuple(input_spec.shape), np.dtype(input_spec.dtype), True)]
    for name, shape in outputs.items():
        dims = tuple(int(d) for d in shape)
        if any(d < 1 for d in dims):
            raise ModelError(f"output {name!r} has an unresolved shape {list(dims)}")
        specs.append(BufferSpec(name, dims, np.dtype(output_dtype), False))
    return tuple(specs)


def manifest_buffer_specs(
    manifest: Manifest, output_shapes: Mapping[str, Sequence[int]] | None = None
) -> tuple[BufferSpec, ...]:
    """Buffer specs for a manifest. A classifier's output is ``(1, len(labels))``; a detector's
    output shape is not in the manifest and must be given (it comes from the engine)."""
    if output_shapes is None:
        if manifest.task != "classification":
            raise ModelError(f"model {manifest.name!r}: a {manifest.task} output shape must be given")
        output_shapes = {o.name: (1, len(manifest.labels)) for o in manifest.outputs}
    return buffer_specs(manifest.input, output_shapes)


def network_plan(
    precision: str, *, has_strongly_typed: bool, has_fp16_flag: bool, has_int8_flag: bool
) -> tuple[bool, tuple[str, ...]]:
    """(strongly typed network?, BuilderFlag names to set) for ``precision`` on this TensorRT.

    int8 files are Q/DQ (explicitly quantized): a strongly typed network, no precision flags, as
    the TensorRT 10 documentation asks; only a TensorRT without strong typing (< 9) gets the old
    weakly typed network with ``INT8``. fp16 builds the fp32 file with ``FP16``, a weak-typing
    flag that TensorRT 11 removed.
    """
    if precision not in PRECISIONS:
        raise ModelError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "int8":
        if has_strongly_typed:
            return True, ()
        return False, ("INT8",) if has_int8_flag else ()
    if precision == "fp16":
        if not has_fp16_flag:
            raise ModelError(
                "this TensorRT has no BuilderFlag.FP16 (removed in TensorRT 11, where networks are "
                "strongly typed): build fp32 or int8, or give the model an FP16 ONNX file"
            )
        return False, ("FP16",)
    return False, ()


def build_engine(
    onnx_path: Path,
    engine_file: Path,
    timing_cache_file: Path | None,
    precision: str,
    workspace_mb: int = 1024,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Build a serialized TensorRT 10 engine from ``onnx_path`` and write it atomically.

    * ``create_network(0)``: explicit batch is the only mode in TensorRT 10 (the
      ``EXPLICIT_BATCH`` flag is deprecated and ignored).
    * ``fp16``: ``BuilderFlag.FP16`` lets TensorRT pick FP16 kernels (weakly typed network).
    * ``int8``: explicit quantization: the ONNX carries QuantizeLinear/DequantizeLinear nodes,
      no calibrator is used. The network is created strongly typed and no precision flag is set
      (see :func:`network_plan`): the Q/DQ nodes alone put the quantized layers in INT8, layers
      left in float stay FP32. TensorRT's parser needs symmetric (zero point 0) INT8 Q/DQ.
    * The timing cache is loaded when present and saved back after the build, so a rebuild
      (new model, other precision) skips kernel timing already done on this GPU.
    * Dynamic inputs get one optimization profile fixed at ``input_shapes`` (batch 1).
    """
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(f"building an engine needs TensorRT: {exc}") from exc
    strongly_typed, flags = network_plan(
        precision,
        has_strongly_typed=hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"),
        has_fp16_flag=hasattr(trt.BuilderFlag, "FP16"),
        has_int8_flag=hasattr(trt.BuilderFlag, "INT8"),
    )

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network_flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        problems = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            node_name = err.node_name() if hasattr(err, "node_name") else ""
            op = err.node_operator() if hasattr(err, "node_operator") else ""
            problems.append(f"node {err.node()} {node_name} ({op}): {err.desc()}".replace("  ", " "))
        raise ModelError(f"{onnx_path}: TensorRT's ONNX parser failed: " + "; ".join(problems))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))

    shapes = dict(input_shapes or {})
    profile = None
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(tensor.shape)
        if all(d >= 0 for d in dims):
            continue
        want = shapes.get(tensor.name)
        if want is None:
            want = tuple(1 if d < 0 else d for d in dims)
        profile = profile or builder.create_optimization_profile()
        profile.set_shape(tensor.name, want, want, want)
    if profile is not None:
        config.add_optimization_profile(profile)

    if timing_cache_file is not None:
        blob = timing_cache_file.read_bytes() if timing_cache_file.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{onnx_path}: TensorRT failed to build a {precision} engine (see the log above)")
    atomic_write(engine_file, bytes(serialized))
    if timing_cache_file is not None:
        atomic_write(timing_cache_file, bytes(config.get_timing_cache().serialize()))
    log.info("built %s engine %s from %s", precision, engine_file, onnx_path.name)
    return engine_file
