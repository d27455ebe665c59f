"""The shared publish gate and the published files' names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.modelkit.publish_gate import VARIANT_FILES, GateRefused, copy_variants, refuse_drops


def test_drops_within_a_point_pass_and_each_larger_one_is_named() -> None:
    refuse_drops({"pruned": 0.01, "int8": -0.02}, "out-of-fold AUC")  # a gain is never refused
    with pytest.raises(GateRefused) as err:
        refuse_drops({"pruned": 0.004, "int8": 0.013, "int8-cpu": 0.02}, "out-of-fold AUC")
    text = str(err.value)
    assert text.startswith("out-of-fold AUC fell by more than 1.0 point(s): ")
    assert "int8 1.30 pt" in text and "int8-cpu 2.00 pt" in text and "pruned" not in text


def test_the_gate_takes_another_limit() -> None:
    refuse_drops({"int8": 0.015}, max_drop=0.02)
    with pytest.raises(GateRefused, match=r"^fell by more than 0\.5 point\(s\): int8 1\.50 pt$"):
        refuse_drops({"int8": 0.015}, max_drop=0.005)


def test_a_build_is_copied_under_the_published_names(tmp_path: Path) -> None:
    build = tmp_path / "final"
    build.mkdir()
    for src in VARIANT_FILES.values():
        (build / src).write_bytes(src.encode())
    copied = copy_variants(build, tmp_path / "out", "cxr-x")
    assert {v: p.name for v, p in copied.items()} == {
        "fp32": "cxr-x-fp32.onnx",
        "int8": "cxr-x-int8.onnx",
        "int8-cpu": "cxr-x-int8-cpu.onnx",
    }
    assert copied["fp32"].read_bytes() == b"pruned.onnx", "the published FP32 file is the pruned network"
    (build / "int8.onnx").unlink()
    with pytest.raises(FileNotFoundError):
        copy_variants(build, tmp_path / "out2", "cxr-x")
