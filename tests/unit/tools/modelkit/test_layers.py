"""The Conv-BN-ReLU chain the recipes build their networks from."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (tools extra: scripts/setup.sh --tools)")

from tools.modelkit.layers import conv_chain  # noqa: E402


def test_the_chain_strides_and_dilates_as_asked_and_names_its_output_channels() -> None:
    body, c = conv_chain((8, 16, 12), (2, 2, 1), (1, 1, 2))
    assert c == 12 and len(body) == 3
    out = body(torch.zeros(1, 1, 64, 64))
    assert out.shape == (1, 12, 16, 16), "two stride-2 layers; the dilated one keeps the size"
    assert sorted(body.state_dict())[0] == "0.0.weight", "the keys the recipes' checkpoints use"


def test_lengths_that_differ_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        conv_chain((8, 16), (2,), (1, 1))
