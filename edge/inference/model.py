"""A loaded model: manifest checked, file verified, session open, checked against the manifest and
warm, task wired.

``LoadedModel.infer(image)`` is the per-frame call: the model's Task prepares the input (into a
reused buffer), the session runs, the Task turns the outputs into a quality verdict and/or
findings, and the result says when the model itself started and ended so latency can be split
into stages. Which Task serves the model is the manifest's ``task`` (see
:mod:`edge.inference.tasks`): nothing here depends on what the model does.

A model that cannot run as its manifest says fails here, at load, with a ModelError naming the
folder (the run has not started: exit 2), never once per frame: the session's shapes are compared
with the manifest's (:mod:`edge.inference.shapes`), then the model runs once on a blank frame even
with ``warmup_runs = 0``; an error there is a ModelError too.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edge.errors import BackendUnavailableError, ModelError
from edge.inference.base import Backend, ModelIdentity, ModelOutput, Session, SessionOptions, get_backend
from edge.inference.engine_cache import EngineNotBuiltError
from edge.inference.manifest import ModelPackage, load_manifest
from edge.inference.shapes import check_session
from edge.inference.tasks import Task, task_for
from edge.results import ModelInfo

__all__ = ["LoadedModel", "ModelOutput"]

log = logging.getLogger(__name__)


def _open_session(
    backend: str | Backend, path: Path, opts: SessionOptions, identity: ModelIdentity
) -> Session:
    """Open with ``backend``; with "auto", a TensorRT box without a built engine still runs (on ORT)."""
    if isinstance(backend, str):
        chosen = get_backend(backend)
    else:
        chosen = backend
        ok, why = chosen.is_available()
        if not ok:
            raise BackendUnavailableError(f"backend {chosen.name!r} is not available here: {why}")
    try:
        return chosen.open(path, opts, identity)
    except EngineNotBuiltError as exc:
        if backend != "auto":
            raise
        log.info("%s; using ONNX Runtime meanwhile", exc)
        return get_backend("onnxruntime").open(path, opts, identity)


class LoadedModel:
    """``backend`` is a registered backend's name ("auto", "onnxruntime", "tensorrt") or a Backend
    made with its own options, e.g. ``TensorRTBackend(TensorRTOptions(cache_dir=...))``."""

    def __init__(
        self,
        folder: Path,
        *,
        precision: str = "auto",
        backend: str | Backend = "auto",
        options: SessionOptions | None = None,
        warmup_runs: int = 3,
        fault_min_confidence: float | None = None,
    ) -> None:
        self.package: ModelPackage = load_manifest(folder)
        m = self.package.manifest
        if fault_min_confidence is not None:  # the deployment's operating point over the manifest's
            th = m.thresholds.model_copy(update={"fault_min_confidence": fault_min_confidence})
            m = m.model_copy(update={"thresholds": th})
        self._task: Task = task_for(m)  # an unknown task fails before any file is read
        path, self.precision, sha = self.package.verified_file(precision)
        opts = options or SessionOptions()
        # A compiling backend (TensorRT) finds its cached engine by model sha256 and precision.
        identity = ModelIdentity.of(m, sha, self.precision)
        self.session = _open_session(backend, path, opts, identity)
        if (
            self.session.provider == "CPUExecutionProvider"
            and self.precision in m.cpu_files
            and path != self.package.file_for(self.precision, cpu=True)[0]
        ):
            # ONNX Runtime ended up on the CPU: run the manifest's CPU form of this precision.
            path, _, sha = self.package.verified_file(self.precision, cpu=True)
            identity = ModelIdentity.of(m, sha, self.precision)
            self.session = get_backend("onnxruntime").open(path, opts, identity)
        if m.input.name not in self.session.input_names:
            raise ModelError(
                f"{path}: manifest input {m.input.name!r} is not among the model's inputs "
                f"{list(self.session.input_names)}"
            )
        self.manifest = m
        self.path = path
        self.info = ModelInfo(
            name=m.name,
            version=m.version,
            sha256=sha,
            precision=self.precision,
            backend=self.session.backend,
            provider=self.session.provider,
        )
        self._input = m.input.name
        check_session(self.package.folder, path, m, self.session, self._task)
        bind = getattr(self._task, "bind_outputs", None)  # a task that reads several outputs by name
        if bind is not None and getattr(self.session, "output_names", None):
            bind(tuple(self.session.output_names))
        try:
            self.warmup(max(1, warmup_runs))  # at least once: the check that it runs at all
        except Exception as exc:
            raise ModelError(
                f"{self.package.folder}: model {m.name!r} ({path.name}) fails on a blank "
                f"{m.input.hw[1]}x{m.input.hw[0]} frame at load: {type(exc).__name__}: {exc}"
            ) from exc
        log.info(
            "model %s %s (%s) on %s/%s",
            m.name,
            m.version,
            self.precision,
            self.info.backend,
            self.info.provider,
        )

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def task(self) -> str:
        return self.manifest.task

    def warmup(self, runs: int) -> None:
        """Run on a blank input so the first real frame pays no allocation or kernel-selection cost."""
        h, w = self.manifest.input.hw
        blank = np.zeros((h, w, 3), np.uint8)
        for _ in range(runs):
            self.infer(blank)

    def reset_view(self) -> None:
        """Forget the imaging area tracked for the "sector" and "scanlines" views (a task with
        no such state has no ``reset``): the next frame's is found afresh. The chain calls it on a
        new source or a scene change; a caller scoring clip after clip calls it between clips."""
        reset = getattr(self._task, "reset", None)
        if reset is not None:
            reset()

    def run_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run({self._input: tensor}))

    def infer(self, image: np.ndarray) -> ModelOutput:
        tensor, transform = self._task.prepare(image)
        t0 = time.monotonic_ns()
        outputs = self.session.run({self._input: tensor})
        t1 = time.monotonic_ns()
        out = self._task.decode(outputs, transform, image.shape[:2])
        return ModelOutput(out.quality, out.findings, t0, t1, out.masks, out.heatmap)
