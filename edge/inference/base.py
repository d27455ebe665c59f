"""The Backend interface: open a model file into a Session that runs numpy in, numpy out.

ONNX Runtime and TensorRT are plugins behind it. Each says whether it can run here and, if
not, what to install, so an error tells the user what to do rather than failing obscurely.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.errors import BackendUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionOptions:
    providers: tuple[str, ...] = ("auto",)
    threads: int = 0
    # What a backend that compiles the model (TensorRT) needs to find its cached engine for an
    # ONNX file; LoadedModel fills them from the verified manifest. Ignored by ONNX Runtime.
    model_name: str = ""
    model_sha256: str = ""
    precision: str = ""
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    engine_cache_dir: str = ""  # "" = $EDGE_ENGINE_CACHE or ~/.cache/scanner-edge/engines


class Session(Protocol):
    backend: str  # "onnxruntime", "tensorrt"
    provider: str  # what actually runs it, e.g. "CPUExecutionProvider"
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, inputs: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]: ...


class Backend(Protocol):
    name: str

    def is_available(self) -> tuple[bool, str]:
        """(True, version) or (False, what to install)."""

    def open(self, model_path: Path, options: SessionOptions) -> Session: ...


_BACKENDS: dict[str, Callable[[], Backend]] = {}
_LOGGED_FALLBACKS: set[str] = set()  # "auto" logs why it skipped a backend once per reason


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    _BACKENDS[name] = factory


def get_backend(name: str) -> Backend:
    """The backend called ``name``; "auto" = the first available in preference order."""
    _load_builtin()
    if name == "auto":
        reasons = []
        for candidate in ("tensorrt", "onnxruntime"):
            if candidate not in _BACKENDS:
                continue
            backend = _BACKENDS[candidate]()
            ok, why = backend.is_available()
            if ok:
                return backend
            reasons.append(f"{candidate}: {why}")
            if candidate == "tensorrt" and "onnxruntime" in _BACKENDS and why not in _LOGGED_FALLBACKS:
                _LOGGED_FALLBACKS.add(why)
                log.info("TensorRT backend unavailable (%s); using ONNX Runtime", why)
        raise BackendUnavailableError("no inference backend is available: " + "; ".join(reasons))
    factory = _BACKENDS.get(name)
    if factory is None:
        raise BackendUnavailableError(f"unknown backend {name!r}; known: {', '.join(sorted(_BACKENDS))}")
    backend = factory()
    ok, why = backend.is_available()
    if not ok:
        raise BackendUnavailableError(f"backend {name!r} is not available here: {why}")
    return backend


def available_backends() -> dict[str, tuple[bool, str]]:
    _load_builtin()
    return {name: factory().is_available() for name, factory in sorted(_BACKENDS.items())}


def _load_builtin() -> None:
    if "tensorrt" not in _BACKENDS:
        from edge.inference.tensorrt_backend import TensorRTBackend

        register_backend("tensorrt", TensorRTBackend)
    if "onnxruntime" not in _BACKENDS:
        from edge.inference.onnxruntime_backend import OnnxRuntimeBackend

        register_backend("onnxruntime", OnnxRuntimeBackend)
