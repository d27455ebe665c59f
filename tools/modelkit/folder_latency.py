"""``python -m tools.modelkit.folder_latency FOLDER...``: ONNX Runtime CPU latency of every file of
published model folders (``files`` and ``cpu_files``), taking turns on the same inputs so that a
busy machine slows them alike. Inputs are random tensors of the manifest's input shape (these
networks do the same work on any pixels). Prints the median and 90th percentile in ms; figures of a
shared machine are only comparable within one run."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.inference.manifest import load_manifest
from tools.modelkit.sessions import cpu_session, interleaved_latency


def runners(folder: Path, threads: int = 1) -> dict[str, Callable[[np.ndarray], object]]:
    pkg = load_manifest(folder)
    m = pkg.manifest
    files = {p: s.path for p, s in m.files.items()} | {f"{p}-cpu": s.path for p, s in m.cpu_files.items()}
    out: dict[str, Callable[[np.ndarray], object]] = {}
    for precision, name in files.items():
        out[f"{m.name} {precision}"] = _runner(folder / name, m.input.name, threads)
    return out


def _runner(path: Path, input_name: str, threads: int) -> Callable[[np.ndarray], object]:
    sess = cpu_session(path, threads)

    def run(x: np.ndarray) -> object:
        return sess.run(None, {input_name: x})

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.modelkit.folder_latency", description=__doc__.splitlines()[0]
    )
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    for folder in a.folders:
        shape = tuple(load_manifest(folder).manifest.input.shape)
        inputs = [rng.normal(size=shape).astype(np.float32) for _ in range(8)]
        times = interleaved_latency(runners(folder, a.threads), inputs, a.runs, warmup=20)
        for name, t in times.items():
            med, p90 = np.median(t), np.percentile(t, 90)
            print(f"{name:28s} median {med:6.2f} ms  p90 {p90:6.2f} ms  ({len(t)} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
