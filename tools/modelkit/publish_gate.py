"""The publish gate every recipe shares, and the files a published folder takes from a build.

Pruning and each INT8 form may lose at most ``MAX_DROP`` (1 point) of the model's headline figure
against its parent, measured out of fold; otherwise nothing is published (the recipes' CLIs exit 3).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

MAX_DROP = 0.01

# A build folder's files (tools.modelkit.int8_forms) -> the published names' suffixes. The published
# FP32 file is the pruned network: the INT8 forms are quantized from it.
VARIANT_FILES = {"fp32": "pruned.onnx", "int8": "int8.onnx", "int8-cpu": "int8-cpu.onnx"}


class GateRefused(RuntimeError):
    """A variant lost more than the gate allows; the message names each drop."""


def refuse_drops(drops: Mapping[str, float], figure: str = "", max_drop: float = MAX_DROP) -> None:
    """Raise :class:`GateRefused` naming every drop over ``max_drop`` (fractions: 0.02 = 2 points)."""
    bad = {k: v for k, v in drops.items() if v > max_drop}
    if bad:
        what = f"{figure} " if figure else ""
        raise GateRefused(
            f"{what}fell by more than {max_drop * 100:.1f} point(s): "
            + ", ".join(f"{k} {v * 100:.2f} pt" for k, v in bad.items())
        )


def copy_variants(build: Path, out: Path, name: str) -> dict[str, Path]:
    """Copy a build's FP32 (pruned) and both INT8 files into ``out`` as ``<name>-<variant>.onnx``."""
    out.mkdir(parents=True, exist_ok=True)
    copied = {}
    for variant, src in VARIANT_FILES.items():
        copied[variant] = out / f"{name}-{variant}.onnx"
        shutil.copyfile(build / src, copied[variant])
    return copied
