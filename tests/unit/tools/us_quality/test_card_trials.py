"""The card's reading of the committed runs: the one-fold probes and the headline's shadow misses
(no torch run)."""

from __future__ import annotations

import json

import pytest

# The card reads the recipe, which imports torch: without the tools set (setup.sh --tools) it cannot load.
pytest.importorskip("torch", reason="torch is not installed (tools extra: scripts/setup.sh --tools)")

from tests.support.paths import MODELS
from tools.us_quality import LABELS
from tools.us_quality.card import _shadow_misses_by_source, shadow_misses
from tools.us_quality.card_trials import PROBE_SOURCE, PROBES, SHADOW_CANDIDATE_FILE, probes
from tools.us_quality.looks import DEPTH_LOOK_P

FOLDER = MODELS / "us-quality"


def _run(name: str) -> dict:
    return json.loads((FOLDER / name).read_text())


# What each probe changed against the headline's recipe, as its run's config records it.
CHANGED = {
    "grouped_cv_probe_pool60.json": {("train", "frames_per_clip"): 60, ("train", "still_repeats"): 12},
    "grouped_cv_probe_pool60_1600.json": {
        ("train", "frames_per_clip"): 60,
        ("train", "still_repeats"): 12,
        ("train", "fit", "steps"): 1600,
    },
    "grouped_cv_probe_depth50.json": {("depth_look_p",): 0.5},
    "grouped_cv_probe_phantom8.json": {("train", "fit", "phantom_per_batch"): 8},
}


def _flat(d: dict, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    out: dict[tuple[str, ...], object] = {}
    for k, v in d.items():
        out.update(_flat(v, (*path, k)) if isinstance(v, dict) else {(*path, k): v})
    return out


@pytest.mark.parametrize("name", [f for f, _, _ in PROBES])
def test_a_probe_is_the_headline_recipe_with_its_change_on_one_fold(name: str) -> None:
    probe, head = _run(name), _run(SHADOW_CANDIDATE_FILE)
    assert {r["source"] for r in probe["clips"].values()} == {PROBE_SOURCE}
    assert [f["name"] for f in probe["folds"]] == [PROBE_SOURCE]
    pc, hc = _flat(probe["config"]), _flat(head["config"])
    hc.setdefault(
        ("depth_look_p",), DEPTH_LOOK_P
    )  # the headline ran before the share was written into a config
    assert {k: v for k, v in pc.items() if hc.get(k) != v} == CHANGED[name]
    for clip, row in probe["clips"].items():  # the same held-out samples, class by class
        labels = [y for y, _, _ in row["int8_cpu"]["rendered_top"]]
        assert labels == [y for y, _, _ in head["clips"][clip]["int8_cpu"]["rendered_top"]]


def test_the_probes_paragraph_quotes_each_probe_file() -> None:
    text = probes(FOLDER)
    assert all(f"`{name}`" in text for name, _, _ in PROBES)
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
