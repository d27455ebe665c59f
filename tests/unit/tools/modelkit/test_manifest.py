"""tools.modelkit.manifest: shapes from the ONNX, validation by the runtime's Manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.errors import ManifestError
from edge.inference.manifest import load_manifest, verify_folder
from tests.conftest import yolo_model
from tests.unit.tools.modelkit.tiny_models import conv_classifier
from tools.modelkit.manifest import add_file, input_shape, onnx_input, write_manifest


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
