"""tools.modelkit.manifest: shapes from the ONNX, validation by the runtime's Manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.errors import ManifestError
from edge.inference.manifest import load_manifest, verify_folder
from tests.support.onnx_models import yolo_model
from tests.unit.tools.tiny_models import conv_classifier
from tools.modelkit.manifest import add_file, build_manifest, input_shape, onnx_input, write_manifest


def test_input_shape_layouts_and_symbolic_sizes() -> None:
    assert input_shape([1, 3, 640, 640], None, "rgb", None) == ("NCHW", [1, 3, 640, 640])
    assert input_shape([1, 224, 224, 3], None, "rgb", None) == ("NHWC", [1, 224, 224, 3])
    assert input_shape([1, 1, None, None], (96, 128), "gray", None) == ("NCHW", [1, 1, 96, 128])
    with pytest.raises(ManifestError, match="symbolic: give --input-size"):
        input_shape([1, 3, None, None], None, "rgb", None)
    with pytest.raises(
        ManifestError, match="--input-size height 320 does not match the model's fixed height 640"
    ):
        input_shape([1, 3, 640, 640], (320, 320), "rgb", None)
    with pytest.raises(ManifestError, match="rank 2"):
        input_shape([1, 10], None, "rgb", None)


def test_onnx_input_reads_name_and_dims(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(conv_classifier(), path)
    assert onnx_input(path) == ("input", [1, 1, None, None])
    path.write_bytes(b"not onnx")
    with pytest.raises(ManifestError, match="not a readable ONNX model"):
        onnx_input(path)


def test_detector_manifest_defaults_and_verify(tmp_path: Path) -> None:
    src = tmp_path / "yolo.onnx"
    onnx.save(yolo_model(np.zeros((1, 6, 4), np.float32), size=64), src)
    path = write_manifest(src, tmp_path / "det", task="detection", labels=["a", "b"], urgent_labels=["b"])
    doc = json.loads(path.read_text())
    assert doc["name"] == "det" and doc["input"]["name"] == "images"
    assert doc["input"]["shape"] == [1, 3, 64, 64] and doc["input"]["resize"] == "letterbox"
    assert doc["outputs"] == [{"name": "output0", "kind": "yolo"}]
    assert set(verify_folder(tmp_path / "det")) == {"fp32"}
    assert load_manifest(tmp_path / "det").manifest.urgent_labels == ("b",)


def test_bad_fields_are_named(tmp_path: Path) -> None:
    src = tmp_path / "cls.onnx"
    onnx.save(conv_classifier(channels=1), src)
    with pytest.raises(ManifestError, match="--color rgb needs 3 input channel"):
        write_manifest(
            src, tmp_path / "x", task="classification", labels=["a", "b", "c"], input_size=(32, 32)
        )
    with pytest.raises(ManifestError, match="ok_labels/urgent_labels not among labels"):
        write_manifest(
            src, tmp_path / "y", task="classification", labels=["a", "b", "c"], input_size=(32, 32),
            color="gray", ok_labels=["zzz"],
        )  # fmt: skip


def test_add_file_records_hash_and_default(tmp_path: Path) -> None:
    src = tmp_path / "cls.onnx"
    onnx.save(conv_classifier(), src)
    folder = tmp_path / "m"
    write_manifest(
        src, folder, task="classification", labels=["a", "b", "c"], input_size=(32, 32), color="gray"
    )
    (folder / "cls-int8.onnx").write_bytes(src.read_bytes())
    add_file(folder, "int8", folder / "cls-int8.onnx", default=True, note="x")
    m = load_manifest(folder).manifest
    assert m.default_precision == "int8" and m.files["int8"].path == "cls-int8.onnx"
    assert m.provenance["note"] == "x"
    assert set(verify_folder(folder)) == {"fp32", "int8"}


def test_a_recipe_manifest_with_forms_cpu_alternates_and_card(tmp_path: Path) -> None:
    src = tmp_path / "cls-fp32.onnx"
    onnx.save(conv_classifier(), src)
    int8, cpu = tmp_path / "cls-int8.onnx", tmp_path / "cls-int8-cpu.onnx"
    int8.write_bytes(b"int8"), cpu.write_bytes(b"cpu")
    doc = build_manifest(
        src, name="cls", task="classification", labels=["a", "b", "c"], input_size=(32, 32), color="gray",
        ok_labels=["a"], urgent_labels=None, files={"int8": int8}, cpu_files={"int8": cpu},
        default_precision="int8", provenance={"seed": 0}, card="MODEL_CARD.md",
    )  # fmt: skip
    assert "urgent_labels" not in doc and doc["ok_labels"] == ["a"]
    assert list(doc) == [
        "schema_version", "name", "version", "task", "modality", "description", "input", "outputs",
        "labels", "ok_labels", "thresholds", "files", "cpu_files", "default_precision", "provenance", "card",
    ]  # fmt: skip
    assert list(doc["files"]) == ["fp32", "int8"] and doc["files"]["int8"]["path"] == "cls-int8.onnx"
    assert doc["cpu_files"]["int8"]["sha256"] == hashlib.sha256(b"cpu").hexdigest()
    assert doc["default_precision"] == "int8" and doc["card"] == "MODEL_CARD.md"
    plain = build_manifest(
        src, name="cls", task="classification", labels=["a", "b", "c"], input_size=(32, 32), color="gray"
    )
    assert plain["ok_labels"] == plain["urgent_labels"] == []
    assert "cpu_files" not in plain and "card" not in plain
