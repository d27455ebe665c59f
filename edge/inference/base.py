"""The inference seams: Backend opens a model file into a Session (numpy in, numpy out), and
RunnableModel is what the model chain needs of a loaded model.

ONNX Runtime and TensorRT are plugins behind Backend. Each says whether it can run here and, if
not, what to install, so an error tells the user what to do rather than failing obscurely.
Options every backend understands are in :class:`SessionOptions`; what a backend needs to know
about the verified model file is in :class:`ModelIdentity`; options only one backend has (the
TensorRT engine cache) belong to that backend's own class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.errors import BackendUnavailableError
from edge.inference.manifest import Manifest
from edge.results import Finding, ModelInfo, Quality
from edge.xray_qa import Heatmap

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Generic session options; a backend ignores what it has no use for."""

    providers: tuple[str, ...] = ("auto",)  # ONNX Runtime execution providers, in preference order
    threads: int = 0  # intra-op threads; 0 = the backend's default


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """The verified model file a session is opened for: what a backend that compiles the model
    (TensorRT) needs to find its compiled artefact. LoadedModel fills it from the manifest."""

    name: str
    sha256: str
    precision: str
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @classmethod
    def of(cls, manifest: Manifest, sha256: str, precision: str) -> ModelIdentity:
        return cls(manifest.name, sha256, precision, ((manifest.input.name, tuple(manifest.input.shape)),))


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """One frame through one model: its verdict and when the model itself started and ended."""

    quality: Quality | None
    findings: tuple[Finding, ...]
    t_model_start_ns: int
    t_model_end_ns: int
    # Reserved for segmentation tasks (an HxW class-index map in frame pixels). No task fills it
    # yet and nothing downstream reads it; see edge.inference.tasks.base.TaskOutput.
    masks: np.ndarray | None = None
    heatmap: Heatmap | None = None  # a finding model's class-activation map, in frame pixels


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

    def open(
        self, model_path: Path, options: SessionOptions, identity: ModelIdentity | None = None
    ) -> Session:
        """A session for ``model_path``; ``identity`` is the verified file's (None: the backend
        works it out from the file itself, e.g. its sha256)."""


class RunnableModel(Protocol):
    """What the model chain needs of a model: LoadedModel, or any test double with these."""

    @property
    def name(self) -> str: ...

    @property
    def task(self) -> str: ...

    @property
    def manifest(self) -> Manifest: ...

    @property
    def info(self) -> ModelInfo: ...

    @property
    def path(self) -> Path:
        """The model file it runs (the run report names it)."""

    def infer(self, image: np.ndarray) -> ModelOutput: ...


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
