"""ONNX Runtime on the CPU as the toolchain's evaluations run it, and latency timed interleaved.

One intra-op thread is the runtime's default on a device; several variants of a model are timed in
one process, round-robin, so they share the machine's state (caches, clock, other load) and their
medians can be compared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort


def cpu_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and one inter-op thread."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def interleaved_latency(
    runners: Mapping[str, Callable[[np.ndarray], object]],
    inputs: Sequence[np.ndarray],
    runs: int,
    warmup: int,
) -> dict[str, list[float]]:
    """Milliseconds of each of ``runs`` calls per runner, the runners taking turns on each input.

    Input ``i % len(inputs)`` feeds run ``i``; ``warmup`` untimed rounds on the first input go first.
    """
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(warmup):
        for run in runners.values():
            run(inputs[0])
    for i in range(runs):
        x = inputs[i % len(inputs)]
        for k, run in runners.items():
            t0 = time.perf_counter()
            run(x)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return times
