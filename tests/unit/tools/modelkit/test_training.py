"""tools.modelkit.training: one seeding and one export + parity check for every recipe."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.unit.tools.tiny_models import torch_classifier

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed (tools extra)"
)


@pytest.fixture
def restore_torch() -> Iterator[None]:
    """set_determinism changes process-wide torch settings: put them back for the other tests."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def _inputs(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(size=(1, 1, 16, 16)).astype(np.float32) for _ in range(n)]


def test_export_checked_names_the_graph_and_matches_torch(tmp_path: Path, restore_torch: None) -> None:
    from tools.modelkit.training import OPSET, export_checked, set_determinism

    set_determinism(0, 1)
    model = torch_classifier()
    path = tmp_path / "sub" / "m.onnx"
    diff = export_checked(model, path, (1, 1, 16, 16), "input", "logits", _inputs(4))
    assert 0 <= diff < 1e-5
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 16, 16], "static batch of 1, as the runtime feeds it"
    assert "BatchNormalization" not in {n.op_type for n in graph.node}, "BatchNorm folded away"
    assert onnx.load(str(path)).opset_import[0].version == OPSET


def test_the_model_is_exported_and_compared_in_eval_mode(tmp_path: Path, restore_torch: None) -> None:
    from tools.modelkit.training import export_checked

    model = torch_classifier().train()
    checked: list[int] = []

    def feeds() -> Iterator[np.ndarray]:
        for x in _inputs(3):
            checked.append(1)
            yield x

    assert export_checked(model, tmp_path / "m.onnx", (1, 1, 16, 16), "input", "logits", feeds()) < 1e-5
    assert not model.training and len(checked) == 3, "BatchNorm's running statistics, on every input"
    assert export_checked(model, tmp_path / "n.onnx", (1, 1, 16, 16), "input", "logits", []) == 0.0


def test_set_determinism_repeats_a_model_and_refuses_nondeterministic_kernels(restore_torch: None) -> None:
    import torch

    from tools.modelkit.training import set_determinism

    set_determinism(7, 1)
    a = torch_classifier()
    draw_a = np.random.rand()
    set_determinism(7, 1)
    b = torch_classifier()
    assert np.random.rand() == draw_a, "numpy's global state is seeded too"
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
