"""Write a model folder's ``manifest.json``: for a user's ONNX classifier or YOLO detector, and for
the bundled models' recipes, which publish through the same ``build_manifest``.

The input tensor's name, layout and size are read from the ONNX file, so the manifest cannot name
an input the model does not have; the result is validated by the runtime's own ``Manifest`` model
before it is written, and every file gets its sha256 (``sha256_file``, the runtime's own).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
from pydantic import ValidationError

from edge.errors import ManifestError
from edge.inference.manifest import MANIFEST_NAME, Manifest, load_manifest, sha256_file

NORMALIZE_PRESETS: dict[str, dict[str, Any]] = {
    "unit": {"scale": 1 / 255, "mean": [0.0], "std": [1.0]},  # x/255: Ultralytics YOLO
    "imagenet": {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "none": {"scale": 1.0, "mean": [0.0], "std": [1.0]},  # raw 0..255
}


def onnx_input(path: Path) -> tuple[str, list[int | None]]:
    """Name and shape (None for a symbolic dimension) of the model's only graph input."""
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ManifestError(f"{path}: not a readable ONNX model: {exc}") from exc
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ManifestError(
            f"{path}: the runtime feeds one image tensor; this model has {len(inputs)} inputs "
            f"{[i.name for i in inputs]}"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    return inputs[0].name, shape


def input_shape(
    onnx_shape: Sequence[int | None], size: tuple[int, int] | None, color: str, layout: str | None
) -> tuple[str, list[int]]:
    """(layout, [1, C, H, W] or [1, H, W, C]) from the ONNX shape, filling symbolic sizes from ``size``."""
    if len(onnx_shape) != 4:
        raise ManifestError(f"input has rank {len(onnx_shape)}; an image model needs 4 (N,C,H,W or N,H,W,C)")
    channels = 1 if color == "gray" else 3
    if layout is None:
        layout = "NHWC" if onnx_shape[3] in (1, 3) and onnx_shape[1] not in (1, 3) else "NCHW"
    hw = (onnx_shape[2], onnx_shape[3]) if layout == "NCHW" else (onnx_shape[1], onnx_shape[2])
    have = onnx_shape[1] if layout == "NCHW" else onnx_shape[3]
    if have is not None and have != channels:
        raise ManifestError(
            f"--color {color} needs {channels} input channel(s); the model's input has {have}"
        )
    if size is not None:
        for got, want, axis in zip(hw, size, ("height", "width")):
            if got is not None and got != want:
                raise ManifestError(
                    f"--input-size {axis} {want} does not match the model's fixed {axis} {got}"
                )
        hw = size
    if hw[0] is None or hw[1] is None:
        raise ManifestError("the model's input height/width are symbolic: give --input-size")
    h, w = int(hw[0]), int(hw[1])
    return layout, ([1, channels, h, w] if layout == "NCHW" else [1, h, w, channels])


def build_manifest(
    onnx_path: Path,
    *,
    name: str,
    task: str,
    labels: Sequence[str],
    input_size: tuple[int, int] | None = None,
    color: str = "rgb",
    layout: str | None = None,
    resize: str | None = None,
    view: str = "frame",
    normalize: dict[str, Any] | str = "unit",
    output_kind: str | None = None,
    version: str = "0.1.0",
    ok_labels: Sequence[str] | None = (),
    urgent_labels: Sequence[str] | None = (),
    thresholds: dict[str, Any] | None = None,
    modality: Sequence[str] = ("US",),
    description: str = "",
    file_name: str | None = None,
    provenance: dict[str, object] | None = None,
    files: Mapping[str, Path] | None = None,
    cpu_files: Mapping[str, Path] | None = None,
    default_precision: str = "fp32",
    card: str | None = None,
    postprocess: Sequence[str] = (),
) -> dict[str, Any]:
    """The manifest dict for ``onnx_path`` (as fp32 file ``file_name``), validated by ``Manifest``.

    ``files`` adds other precisions (``{"int8": path}``) and ``cpu_files`` the ONNX Runtime CPU
    alternates, each named by its file name in the folder and hashed. ``ok_labels`` or
    ``urgent_labels`` of None leave the key out (the runtime reads it as empty); ``card`` names the
    folder's model card; ``view`` is the input's view of the frame ("frame", "sector", "scanlines");
    ``postprocess`` names the runtime's classical stages after the model (``Manifest.postprocess``).
    """
    in_name, onnx_shape = onnx_input(onnx_path)
    lay, shape = input_shape(onnx_shape, input_size, color, layout)
    norm = NORMALIZE_PRESETS[normalize] if isinstance(normalize, str) else normalize
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    doc: dict[str, Any] = {
        "schema_version": 1,
        "name": name,
        "version": version,
        "task": task,
        "modality": list(modality),
        "description": description,
        "input": {
            "name": in_name,
            "shape": shape,
            "layout": lay,
            "color": color,
            "dtype": "float32",
            # Letterbox keeps a detector's aspect ratio (Ultralytics trains that way); a
            # classifier sees the whole frame stretched, as the bundled us-quality does.
            "resize": resize or ("letterbox" if task == "detection" else "stretch"),
            "normalize": norm,
        },
        "outputs": [
            {
                "name": graph.output[0].name,
                "kind": output_kind or ("yolo" if task == "detection" else "logits"),
            }
        ],
        "labels": list(labels),
    }
    for key, names in (("ok_labels", ok_labels), ("urgent_labels", urgent_labels)):
        if names is not None:
            doc[key] = list(names)
    if view != "frame":  # "frame" is the default: manifests of earlier runtimes stay as they were
        doc["input"]["view"] = view
    doc["thresholds"] = dict(thresholds or {})
    doc["files"] = {"fp32": {"path": file_name or onnx_path.name, "sha256": sha256_file(onnx_path)}}
    doc["files"].update(_file_specs(files or {}))
    if cpu_files:
        doc["cpu_files"] = _file_specs(cpu_files)
    doc["default_precision"] = default_precision
    if postprocess:
        doc["postprocess"] = list(postprocess)
    doc["provenance"] = dict(provenance or {})
    if card is not None:
        doc["card"] = card
    validate(doc, onnx_path)
    return doc


def _file_specs(files: Mapping[str, Path]) -> dict[str, dict[str, str]]:
    return {p: {"path": Path(f).name, "sha256": sha256_file(Path(f))} for p, f in files.items()}


def validate(doc: dict[str, Any], where: Path) -> Manifest:
    try:
        return Manifest.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top level>'}: {e['msg']}" for e in exc.errors()
        )
        raise ManifestError(f"manifest for {where}: {problems}") from None


def write_manifest(onnx_path: Path, out_dir: Path, **fields: Any) -> Path:
    """Copy the ONNX into ``out_dir`` (unless it is there already) and write ``manifest.json``."""
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / onnx_path.name
    if target.resolve() != onnx_path.resolve():
        shutil.copyfile(onnx_path, target)
    fields.setdefault("name", out_dir.resolve().name)
    doc = build_manifest(target, file_name=target.name, **fields)
    path = out_dir / MANIFEST_NAME
    save(path, doc)
    load_manifest(out_dir).verified_file("fp32")  # what `edge models verify` will check
    return path


def add_file(
    folder: Path, precision: str, file: Path, *, default: bool = False, **provenance: object
) -> Path:
    """Add (or replace) the ``precision`` entry of a folder's manifest with ``file`` and its sha256."""
    path = Path(folder) / MANIFEST_NAME
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["files"][precision] = {"path": Path(file).name, "sha256": sha256_file(Path(file))}
    if default:
        doc["default_precision"] = precision
    if provenance:
        doc.setdefault("provenance", {}).update(provenance)
    validate(doc, path)
    save(path, doc)
    return path


def save(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
