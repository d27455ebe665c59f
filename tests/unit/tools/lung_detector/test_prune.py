"""Pruning reaches its FLOPs target and the pruned chain rebuilds from its widths (needs torch)."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch_pruning") is None,
    reason="torch and torch-pruning are not installed (tools extra)",
)


def test_prune_to_target_then_rebuild_gives_the_same_outputs() -> None:
    import torch

    from tools.lung_detector.model import Detector
    from tools.lung_detector.prune import flops_params, prune_to, rebuild, widths

    torch.manual_seed(0)
    model = Detector(4).eval()
    before, _ = flops_params(model, 64)
    report = prune_to(model, 64, 0.45, log=lambda _m: None)
    after, _ = flops_params(model, 64)
    assert report["flops_removed"] >= 0.45 and after == report["after"]["macs"] < before
    assert all(w % 8 == 0 for w in widths(model)), "channel counts stay multiples of 8"
    again = rebuild(model.state_dict(), 4, widths(model))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), again(x), atol=1e-5)
