"""Build ``models/bench-slow/``: a deliberately heavy classifier for the bench's slow-model scenario.

It takes the us-quality input (1x1x128x128) and output (5 logits) but runs a stack of wide
3x3 convolutions at full resolution, so one inference takes longer than a 30 fps frame
interval on a small CPU. Weights are random (seeded): it measures scheduling, not medicine.

    python -m tools.bench.slow_model [--layers 8] [--channels 56] [--out models/bench-slow]
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tools.modelkit.manifest import MANIFEST_NAME, save, sha256_file

LABELS = ["diagnostic", "no_contact", "shadow", "gain_high", "gain_low"]


def build(layers: int, channels: int, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev, prev_c = "input", 1
    for i in range(layers):
        w = (rng.standard_normal((channels, prev_c, 3, 3)) * np.sqrt(2.0 / (prev_c * 9))).astype(np.float32)
        b = np.zeros(channels, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev, prev_c = f"r{i}", channels
    fc = (rng.standard_normal((len(LABELS), channels)) * 0.1).astype(np.float32)
    inits += [
        numpy_helper.from_array(fc, "fc_w"),
        numpy_helper.from_array(np.zeros(len(LABELS), np.float32), "fc_b"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "bench_slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 128, 128])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, len(LABELS)])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--channels", type=int, default=56)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("models/bench-slow"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench-slow-fp32.onnx"
    onnx.save(build(args.layers, args.channels, args.seed), path)
    manifest = {
        "schema_version": 1,
        "name": "bench-slow",
        "version": "1.0.0",
        "task": "classification",
        "modality": ["US"],
        "description": (
            "Benchmark-only model, random weights, slower than a 30 fps frame interval. Not for use."
        ),
        "input": {
            "name": "input",
            "shape": [1, 1, 128, 128],
            "layout": "NCHW",
            "color": "gray",
            "dtype": "float32",
            "resize": "stretch",
            "normalize": {"scale": 1 / 255, "mean": [0.5], "std": [0.25]},
        },
        "outputs": [{"name": "logits", "kind": "logits"}],
        "labels": LABELS,
        "ok_labels": ["diagnostic"],
        "files": {"fp32": {"path": path.name, "sha256": sha256_file(path)}},
        "default_precision": "fp32",
        "provenance": {
            "tool": "tools/bench/slow_model.py",
            "layers": args.layers,
            "channels": args.channels,
            "seed": args.seed,
            "created": dt.date.today().isoformat(),
        },
    }
    save(args.out / MANIFEST_NAME, manifest)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MB) and its manifest")


if __name__ == "__main__":
    main()
