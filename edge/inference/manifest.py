"""Model manifests: what a model folder holds and how to feed it, checked before anything runs.

Each folder under ``models/`` has a ``manifest.json`` naming the task, the input tensor (name,
shape, layout, colour, normalisation), the labels and thresholds, and each file with its
sha256. A file whose hash does not match is refused: a model that changed on disk is not the
model that was evaluated.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ManifestError, ModelIntegrityError

MANIFEST_NAME = "manifest.json"
Precision = Literal["fp32", "fp16", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalize(_Strict):
    """``x = (pixel * scale - mean[c]) / std[c]``."""

    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)


class InputSpec(_Strict):
    name: str
    shape: tuple[int, int, int, int]
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color: Literal["gray", "rgb", "bgr"] = "gray"
    dtype: Literal["float32", "float16", "uint8"] = "float32"
    resize: Literal["stretch", "letterbox"] = "stretch"
    normalize: Normalize = Field(default_factory=Normalize)
    # What of the frame the model sees (edge.inference.sector): the whole frame as it is; the
    # imaging area cropped, 0 outside it, brightness normalised; or a convex fan resampled to
    # scan-line coordinates (rows = depth, columns = scan lines), normalised.
    view: Literal["frame", "sector", "scanlines"] = "frame"

    @property
    def channels(self) -> int:
        return self.shape[1] if self.layout == "NCHW" else self.shape[3]

    @property
    def hw(self) -> tuple[int, int]:
        return (self.shape[2], self.shape[3]) if self.layout == "NCHW" else (self.shape[1], self.shape[2])

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        want = 1 if self.color == "gray" else 3
        if self.channels != want:
            raise ValueError(
                f"shape {list(self.shape)} has {self.channels} channels but color is {self.color}"
            )
        if self.view != "frame" and self.color != "gray":
            raise ValueError(f"view {self.view!r} needs color gray (brightness is normalised on gray)")
        if self.shape[0] != 1:
            raise ValueError("batch size must be 1 (the runtime infers one frame at a time)")
        for seq in (self.normalize.mean, self.normalize.std):
            if len(seq) not in (1, want):
                raise ValueError(f"normalize mean/std need 1 or {want} values")
        if any(s == 0 for s in self.normalize.std):
            raise ValueError("normalize std must not be 0")
        return self


class OutputSpec(_Strict):
    name: str
    # "heatmap": a classification model's class-activation maps, [1, C, h, w] float32 (one map per
    # label over the whole model input, before any normalisation): the finding's map is drawn over
    # the image (edge.render.xray_overlay), and the model is a finding model (tasks/classification).
    kind: Literal["logits", "probabilities", "yolo", "heatmap"] = "logits"


class FileSpec(_Strict):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Thresholds(_Strict):
    min_confidence: float = Field(0.25, ge=0, le=1)  # below: not reported
    review_below: float = Field(0.5, ge=0, le=1)  # reported, but flagged needs_review
    # A quality classifier: a label outside ok_labels is called only at this probability or above;
    # below it the verdict is the likeliest ok label (0: the top label always wins).
    fault_min_confidence: float = Field(0.0, ge=0, le=1)
    iou: float = Field(0.45, gt=0, le=1)  # NMS overlap
    max_detections: int = Field(100, ge=1)


class Manifest(_Strict):
    schema_version: Literal[1] = 1
    name: str
    version: str
    # Which Task serves the model ("classification", "detection", or one a user registered);
    # LoadedModel refuses a task no one registered, naming the known ones.
    task: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    modality: tuple[str, ...] = ("US",)
    description: str = ""
    input: InputSpec
    outputs: tuple[OutputSpec, ...] = Field(min_length=1)
    labels: tuple[str, ...] = Field(min_length=1)
    ok_labels: tuple[str, ...] = ()
    urgent_labels: tuple[str, ...] = ()
    thresholds: Thresholds = Field(default_factory=Thresholds)
    files: dict[Precision, FileSpec] = Field(min_length=1)
    # Alternates of a precision for ONNX Runtime on the CPU: the same weights and calibration in
    # the form x86 CPU kernels run fastest (asymmetric uint8 activations, whose ReLUs fold into
    # the convolutions), which TensorRT's parser refuses. ``files`` keeps the portable one.
    cpu_files: dict[Precision, FileSpec] = Field(default_factory=dict)
    default_precision: Precision = "fp32"
    # Classical stages the runtime runs on the model's input after the model, each measured in the
    # model's card: "consensus_b_lines" adds the B-lines that the consensus definition finds in
    # scan-line space (edge.inference.blines) where the model found none (needs a detection model
    # with input.view "scanlines" and a "b_line" label).
    postprocess: tuple[Literal["consensus_b_lines"], ...] = ()
    provenance: dict[str, object] = Field(default_factory=dict)
    card: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        unknown = [lab for lab in (*self.ok_labels, *self.urgent_labels) if lab not in self.labels]
        if unknown:
            raise ValueError(f"ok_labels/urgent_labels not among labels: {unknown}")
        if "consensus_b_lines" in self.postprocess and (
            self.task != "detection" or self.input.view != "scanlines" or "b_line" not in self.labels
        ):
            raise ValueError(
                'postprocess "consensus_b_lines" needs task "detection", input.view "scanlines" and a '
                f'"b_line" label (task {self.task!r}, view {self.input.view!r}, labels {list(self.labels)})'
            )
        heatmaps = [i for i, o in enumerate(self.outputs) if o.kind == "heatmap"]
        if heatmaps and (self.task != "classification" or heatmaps[0] == 0 or len(heatmaps) > 1):
            raise ValueError(
                'an output of kind "heatmap" needs task "classification", follows the scores output '
                f"and comes once (task {self.task!r}, outputs {[o.kind for o in self.outputs]})"
            )
        if self.default_precision not in self.files:
            raise ValueError(f"default_precision {self.default_precision!r} has no entry in files")
        orphans = sorted(p for p in self.cpu_files if p not in self.files)
        if orphans:
            raise ValueError(f"cpu_files {orphans} are alternates of precisions that files lacks")
        return self


class ModelPackage:
    """A manifest together with the folder it came from."""

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.folder = folder
        self.manifest = manifest

    def file_for(self, precision: str, *, cpu: bool = False) -> tuple[Path, FileSpec, Precision]:
        """The file for ``precision`` ("auto" = the manifest's default), unchecked; with ``cpu``,
        its ONNX Runtime CPU alternate where the manifest has one."""
        m = self.manifest
        chosen = m.default_precision if precision == "auto" else precision
        for p, spec in m.files.items():
            if p == chosen:
                spec = m.cpu_files.get(p, spec) if cpu else spec
                return self.folder / spec.path, spec, p
        raise ManifestError(
            f"{self.folder / MANIFEST_NAME}: model {m.name!r} has no {chosen} file "
            f"(has: {', '.join(sorted(m.files))})"
        )

    def verified_file(self, precision: str, *, cpu: bool = False) -> tuple[Path, Precision, str]:
        """Path, precision and sha256 of the file to load, after checking its hash."""
        path, spec, chosen = self.file_for(precision, cpu=cpu)
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise ModelIntegrityError(
                f"{path}: sha256 {actual} does not match the manifest's {spec.sha256}; "
                "the file was changed or damaged, refusing to load it"
            )
        return path, chosen, actual


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read model file: {exc.strerror or exc}") from exc
    return h.hexdigest()


def load_manifest(folder: Path) -> ModelPackage:
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no manifest (is {folder} a model folder?)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from exc
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top level>'}: "
            f"{'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()
        )
        raise ManifestError(f"{path}: {problems}") from None
    return ModelPackage(folder, manifest)


def verify_folder(folder: Path) -> dict[str, str]:
    """Check every file of a model folder; return {precision: sha256}, CPU alternates as
    "<precision>-cpu". Raises on the first mismatch."""
    package = load_manifest(folder)
    out: dict[str, str] = {p: package.verified_file(p)[2] for p in package.manifest.files}
    out |= {f"{p}-cpu": package.verified_file(p, cpu=True)[2] for p in package.manifest.cpu_files}
    return out
