import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.errors import ManifestError, ModelIntegrityError
from edge.inference.manifest import load_manifest, verify_folder
from edge.inference.model import LoadedModel
from tests.support.paths import MODELS


def test_bundled_models_verify() -> None:
    for folder in (MODELS / "us-quality", MODELS / "bench-slow"):
        hashes = verify_folder(folder)
        assert hashes and all(len(h) == 64 for h in hashes.values())


def test_a_tampered_file_is_refused(tiny_classifier: Callable[..., Path]) -> None:
    folder = tiny_classifier()
    model_file = folder / "model.onnx"
    data = bytearray(model_file.read_bytes())
    data[-1] ^= 0x01  # one flipped bit
    model_file.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"model\.onnx: sha256 .* does not match"):
        LoadedModel(folder)
    with pytest.raises(ModelIntegrityError):
        verify_folder(folder)


def test_missing_file_and_manifest_are_named(tiny_classifier: Callable[..., Path], tmp_path: Path) -> None:
    folder = tiny_classifier()
    (folder / "model.onnx").unlink()
    with pytest.raises(ManifestError, match=r"model\.onnx: cannot read model file"):
        verify_folder(folder)
    with pytest.raises(ManifestError, match="no manifest"):
        load_manifest(tmp_path / "empty")


def _rewrite(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"task": ""}, "task: String should match pattern"),  # unknown tasks: tasks/test_registry.py
        ({"labels": []}, "labels"),
        ({"ok_labels": ["nope"]}, "not among labels"),
        ({"default_precision": "int8"}, "default_precision 'int8' has no entry"),
        ({"colour": "x"}, "colour: unknown field"),
        (
            {"input": {"name": "input", "shape": [1, 3, 32, 32], "color": "gray"}},
            "channels but color is gray",
        ),
        (
            {"input": {"name": "input", "shape": [1, 1, 32, 32], "view": "polar"}},
            "input.view: Input should be 'frame', 'sector' or 'scanlines'",
        ),
        (
            {"input": {"name": "input", "shape": [1, 3, 32, 32], "color": "rgb", "view": "scanlines"}},
            "view 'scanlines' needs color gray",
        ),
    ],
)
def test_bad_manifests_name_the_field(
    tiny_classifier: Callable[..., Path], changes: dict, needle: str
) -> None:
    folder = tiny_classifier()
    _rewrite(folder, **changes)
    with pytest.raises(ManifestError) as e:
        load_manifest(folder)
    assert str(folder / "manifest.json") in str(e.value)
    assert needle in str(e.value)


def test_unknown_precision_is_refused(tiny_classifier: Callable[..., Path]) -> None:
    with pytest.raises(ManifestError, match="has no int8 file"):
        LoadedModel(tiny_classifier(), precision="int8")


def _with_cpu_alternate(folder: Path, tamper: bool = False) -> str:
    """Give the folder's fp32 entry a CPU alternate (a copy of the file); return its sha256."""
    import hashlib
    import shutil

    alt = folder / "model-cpu.onnx"
    shutil.copyfile(folder / "model.onnx", alt)
    sha = hashlib.sha256(alt.read_bytes()).hexdigest()
    if tamper:
        alt.write_bytes(alt.read_bytes()[:-1] + bytes([alt.read_bytes()[-1] ^ 1]))
    _rewrite(folder, cpu_files={"fp32": {"path": "model-cpu.onnx", "sha256": sha}})
    return sha


def test_on_the_cpu_the_manifests_cpu_alternate_runs_and_is_verified(
    tiny_classifier: Callable[..., Path],
) -> None:
    folder = tiny_classifier()
    sha = _with_cpu_alternate(folder)
    model = LoadedModel(folder)  # this machine has no GPU: ONNX Runtime runs on the CPU
    assert model.session.provider == "CPUExecutionProvider"
    assert model.path.name == "model-cpu.onnx" and model.info.sha256 == sha
    assert verify_folder(folder)["fp32-cpu"] == sha


def test_a_tampered_cpu_alternate_is_refused(tiny_classifier: Callable[..., Path]) -> None:
    folder = tiny_classifier()
    _with_cpu_alternate(folder, tamper=True)
    with pytest.raises(ModelIntegrityError, match=r"model-cpu\.onnx: sha256"):
        LoadedModel(folder)


def test_a_cpu_alternate_of_a_missing_precision_is_refused(tiny_classifier: Callable[..., Path]) -> None:
    folder = tiny_classifier()
    _rewrite(folder, cpu_files={"int8": {"path": "model.onnx", "sha256": "0" * 64}})
    with pytest.raises(ManifestError, match=r"cpu_files \['int8'\] are alternates"):
        load_manifest(folder)


def test_input_view_defaults_to_the_whole_frame(tiny_classifier: Callable[..., Path]) -> None:
    folder = tiny_classifier()
    assert load_manifest(folder).manifest.input.view == "frame"  # manifests from before the field
    data = json.loads((folder / "manifest.json").read_text())
    _rewrite(folder, input={**data["input"], "view": "sector"})
    assert load_manifest(folder).manifest.input.view == "sector"
