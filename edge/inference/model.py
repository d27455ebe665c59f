"""A loaded model: manifest checked, file verified, session open and warm, task wired.

``LoadedModel.infer(image)`` is the per-frame call: preprocess into a reused buffer, run the
session, turn the outputs into a Quality (classification) or Findings (detection), and say
when the model itself started and ended so latency can be split into stages.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.inference.base import Session, SessionOptions, get_backend
from edge.inference.detection import batched_nms, decode_yolo
from edge.inference.engine_cache import EngineNotBuiltError
from edge.inference.manifest import ModelPackage, load_manifest
from edge.inference.preprocess import Preprocessor
from edge.results import Box, Finding, ModelInfo, Quality

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelOutput:
    quality: Quality | None
    findings: tuple[Finding, ...]
    t_model_start_ns: int
    t_model_end_ns: int


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _open_session(backend: str, path: Path, opts: SessionOptions) -> Session:
    """Open with ``backend``; with "auto", a TensorRT box without a built engine still runs (on ORT)."""
    chosen = get_backend(backend)
    try:
        return chosen.open(path, opts)
    except EngineNotBuiltError as exc:
        if backend != "auto":
            raise
        log.info("%s; using ONNX Runtime meanwhile", exc)
        return get_backend("onnxruntime").open(path, opts)


class LoadedModel:
    def __init__(
        self,
        folder: Path,
        *,
        precision: str = "auto",
        backend: str = "auto",
        options: SessionOptions | None = None,
        warmup_runs: int = 3,
    ) -> None:
        self.package: ModelPackage = load_manifest(folder)
        m = self.package.manifest
        path, self.precision, sha = self.package.verified_file(precision)
        # A compiling backend (TensorRT) finds its cached engine by model sha256 and precision.
        opts = replace(
            options or SessionOptions(),
            model_name=m.name,
            model_sha256=sha,
            precision=self.precision,
            input_shapes=((m.input.name, tuple(m.input.shape)),),
        )
        self.session = _open_session(backend, path, opts)
        if (
            self.session.provider == "CPUExecutionProvider"
            and self.precision in m.cpu_files
            and path != self.package.file_for(self.precision, cpu=True)[0]
        ):
            # ONNX Runtime ended up on the CPU: run the manifest's CPU form of this precision.
            path, _, sha = self.package.verified_file(self.precision, cpu=True)
            opts = replace(opts, model_sha256=sha)
            self.session = get_backend("onnxruntime").open(path, opts)
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
        self._pre = Preprocessor(m.input)
        self._labels = m.labels
        self._ok = set(m.ok_labels)
        self._output_kind = m.outputs[0].kind
        self.warmup(warmup_runs)
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
        h, w = self._pre.h, self._pre.w
        blank = np.zeros((h, w, 3), np.uint8)
        for _ in range(runs):
            self.infer(blank)

    def run_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run({self.manifest.input.name: tensor}))

    def infer(self, image: np.ndarray) -> ModelOutput:
        tensor, transform = self._pre(image)
        t0 = time.monotonic_ns()
        outputs = self.session.run({self.manifest.input.name: tensor})
        t1 = time.monotonic_ns()
        if self.manifest.task == "classification":
            return ModelOutput(self._classify(outputs[0]), (), t0, t1)
        boxes, scores, ids = self._detect(outputs[0])
        if len(boxes):
            boxes = transform.to_frame(boxes)
            h, w = image.shape[:2]
            np.clip(boxes[:, [0, 2]], 0, w, out=boxes[:, [0, 2]])
            np.clip(boxes[:, [1, 3]], 0, h, out=boxes[:, [1, 3]])
        review = self.manifest.thresholds.review_below
        findings = tuple(
            Finding(
                label=self._labels[int(c)],
                confidence=float(s),
                box=Box(*(float(v) for v in b)),
                needs_review=bool(s < review),
                class_id=int(c),
            )
            for b, s, c in zip(boxes, scores, ids)
        )
        return ModelOutput(None, findings, t0, t1)

    def _classify(self, logits: np.ndarray) -> Quality:
        flat = np.asarray(logits, np.float32).reshape(-1)
        if flat.size != len(self._labels):
            raise ModelError(f"{self.path}: output has {flat.size} values for {len(self._labels)} labels")
        probs = softmax(flat) if self._output_kind == "logits" else flat
        k = int(probs.argmax())
        label = self._labels[k]
        return Quality(
            label=label,
            score=float(probs[k]),
            ok=label in self._ok,
            probabilities={lab: float(p) for lab, p in zip(self._labels, probs)},
        )

    def _detect(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        th = self.manifest.thresholds
        boxes, scores, ids = decode_yolo(np.asarray(output, np.float32), len(self._labels), th.min_confidence)
        keep = batched_nms(boxes, scores, ids, th.iou)[: th.max_detections]
        return boxes[keep], scores[keep], ids[keep]
