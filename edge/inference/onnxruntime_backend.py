"""ONNX Runtime backend: CPU everywhere, CUDA and TensorRT execution providers where present."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edge.errors import BackendUnavailableError, ModelError
from edge.inference.base import ModelIdentity, SessionOptions

log = logging.getLogger(__name__)

# Preference order when providers = ("auto",): the fastest that this onnxruntime build has.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class OnnxRuntimeSession:
    backend = "onnxruntime"

    def __init__(self, model_path: Path, options: SessionOptions) -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        if options.providers == ("auto",):
            wanted = [p for p in PREFERRED_PROVIDERS if p in available]
        else:
            missing = [p for p in options.providers if p not in available]
            if missing:
                raise BackendUnavailableError(
                    f"ONNX Runtime providers {missing} are not in this onnxruntime build "
                    f"(available: {available}); install onnxruntime-gpu for CUDA/TensorRT"
                )
            wanted = list(options.providers)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.threads:
            so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        # Idle ORT workers spin by default, burning the cores that decoding and display need.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=so, providers=wanted)
        except Exception as exc:  # ORT raises its own untyped exceptions
            raise ModelError(f"{model_path}: ONNX Runtime cannot load the model: {exc}") from exc
        used = self._session.get_providers()
        self.provider = used[0]
        if wanted and used[0] != wanted[0]:
            log.warning("%s: asked for %s, ONNX Runtime runs it on %s", model_path.name, wanted[0], used[0])
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        # What LoadedModel checks against the manifest at load (edge.inference.shapes).
        self.input_shapes = {i.name: tuple(i.shape) for i in self._session.get_inputs()}
        self.input_dtypes = {i.name: str(i.type) for i in self._session.get_inputs()}
        self.output_shapes = {o.name: tuple(o.shape) for o in self._session.get_outputs()}

    def run(self, inputs: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        return self._session.run(None, dict(inputs))


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def is_available(self) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return False, "pip install onnxruntime (or onnxruntime-gpu)"
        return True, f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})"

    def open(
        self, model_path: Path, options: SessionOptions, identity: ModelIdentity | None = None
    ) -> OnnxRuntimeSession:
        """ONNX Runtime runs the file itself: ``identity`` is not needed."""
        return OnnxRuntimeSession(model_path, options)
