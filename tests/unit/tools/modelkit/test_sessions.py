"""tools.modelkit.sessions: the evaluations' ONNX Runtime sessions and interleaved latency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from tests.unit.tools.tiny_models import conv_classifier
from tools.modelkit.sessions import cpu_session, interleaved_latency


def test_cpu_session_runs_on_the_cpu_with_the_threads_asked(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(conv_classifier(), path)
    sess = cpu_session(path)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    opts = sess.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    assert cpu_session(path, threads=2).get_session_options().intra_op_num_threads == 2
    out = sess.run(None, {"input": np.zeros((1, 1, 32, 32), np.float32)})[0]
    assert out.shape == (1, 3)


def test_runners_take_turns_on_each_input_after_warming_up_on_the_first() -> None:
    calls: list[tuple[str, int]] = []
    runners = {name: (lambda x, name=name: calls.append((name, int(x[0])))) for name in ("a", "b")}
    inputs = [np.array([10]), np.array([11]), np.array([12])]
    times = interleaved_latency(runners, inputs, runs=4, warmup=2)
    assert calls[:4] == [("a", 10), ("b", 10)] * 2, "warm-up: in turn, on the first input"
    assert calls[4:] == [(name, x) for x in (10, 11, 12, 10) for name in ("a", "b")], "inputs cycle"
    assert set(times) == {"a", "b"} and all(len(v) == 4 and min(v) >= 0 for v in times.values())
