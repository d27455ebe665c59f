"""The card's reading of the committed runs: the one-fold probes and the headline's shadow misses
(no torch run)."""

from __future__ import annotations

import json

import pytest

from tests.support.paths import MODELS
from tools.us_quality import LABELS
from tools.us_quality.card import _shadow_misses_by_source, shadow_misses
from tools.us_quality.card_trials import POOL_PROBES, PROBE_SOURCE, SHADOW_CANDIDATE_FILE, pool_probes

FOLDER = MODELS / "us-quality"


def _run(name: str) -> dict:
    return json.loads((FOLDER / name).read_text())


@pytest.mark.parametrize("name", POOL_PROBES)
def test_a_probe_is_the_headline_recipe_on_one_fold_with_a_larger_pool(name: str) -> None:
    probe, head = _run(name), _run(SHADOW_CANDIDATE_FILE)
    assert {r["source"] for r in probe["clips"].values()} == {PROBE_SOURCE}
    assert [f["name"] for f in probe["folds"]] == [PROBE_SOURCE]
    pc, hc = probe["config"], head["config"]
    for key in ("view", "rect_crop", "gain_low_basis", "shadow_min_echo", "test_frames_per_clip"):
        assert pc[key] == hc[key], key  # the same recipe and the same held-out renders' definitions
    assert pc["train"]["frames_per_clip"] == 2 * hc["train"]["frames_per_clip"]
    assert pc["train"]["still_repeats"] == 2 * hc["train"]["still_repeats"]
    for clip, row in probe["clips"].items():  # the same held-out samples, class by class
        labels = [y for y, _, _ in row["int8_cpu"]["rendered_top"]]
        assert labels == [y for y, _, _ in head["clips"][clip]["int8_cpu"]["rendered_top"]]


def test_the_probes_paragraph_quotes_each_probe_file() -> None:
    text = pool_probes(FOLDER)
    assert all(f"`{name}`" in text for name in POOL_PROBES)
    assert "nothing was adopted" in text


def test_shadow_misses_add_up_over_sources() -> None:
    from tools.us_quality import FAULT_MIN_CONFIDENCE
    from tools.us_quality import grouped_report as G

    g = G.at_threshold(_run(SHADOW_CANDIDATE_FILE), FAULT_MIN_CONFIDENCE)
    by_source = _shadow_misses_by_source(g)
    k = LABELS.index("shadow")
    hits = sum(r["int8_cpu"]["rendered"]["shadow"][0] for r in g["clips"].values())
    renders = sum(n for _, n in by_source.values())
    assert sum(m for m, _ in by_source.values()) == renders - hits
    text = shadow_misses(g)
    assert f"of {renders} rendered shadows it misses {renders - hits}" in text
    no_contact = sum(
        r["int8_cpu"]["rendered_confusion"][k * len(LABELS) + LABELS.index("no_contact")]
        for r in g["clips"].values()
    )
    assert f"{hits + no_contact} of {renders}" in text
