"""tools.modelkit.cards: a published folder's manifest, card and attribution, written one way."""

from __future__ import annotations

import json
from pathlib import Path

from tools.modelkit.cards import figure, smoke_test_banner, write_model_docs


def test_figures_to_three_decimals_or_a_dash() -> None:
    assert figure(0.98765) == "0.988" and figure(1) == "1.000" and figure(None) == "-"


def test_the_three_documents_and_the_smoke_test_banner(tmp_path: Path) -> None:
    man = {"name": "m", "thresholds": {"min_confidence": 0.5}}
    path = write_model_docs(tmp_path, man, "# m 1.0\n", "# Data\n")
    assert path == tmp_path / "manifest.json"
    assert path.read_text() == json.dumps(man, indent=2) + "\n"
    assert (tmp_path / "MODEL_CARD.md").read_text() == "# m 1.0\n"
    assert (tmp_path / "DATA_SOURCE.md").read_text() == "# Data\n"
    write_model_docs(tmp_path, man, "# m 1.0\n", "# Data\n", smoke_test="a few frames")
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert card == smoke_test_banner("a few frames") + "# m 1.0\n"
    assert card.startswith("> SMOKE TEST (--tiny): a few frames; the numbers below mean nothing.\n\n")
