"""us-quality's publish step, run on the committed model folder: it writes the committed manifest and
card again, so the bundled model cannot disagree with the code that published it (needs torch)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.support.paths import MODELS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed (tools extra)"
)
FOLDER = MODELS / "us-quality"


def _splits() -> dict[str, list[str]]:
    return json.loads((FOLDER / "split.json").read_text())["splits"]


def test_manifest_is_the_committed_one() -> None:
    from tools.us_quality.publish import manifest

    committed = json.loads((FOLDER / "manifest.json").read_text())
    doc = manifest(FOLDER, _splits(), seed=0)
    doc["provenance"]["created"] = committed["provenance"]["created"]  # the day it was published
    assert json.dumps(doc, indent=2) + "\n" == (FOLDER / "manifest.json").read_text()


def test_card_is_the_committed_one() -> None:
    from tools.us_quality.card import model_card

    card = model_card(FOLDER, _splits(), seed=0, wall_s=1480.8)  # the committed steps (a loaded machine)
    assert card == (FOLDER / "MODEL_CARD.md").read_text()
