"""Recipe files: the bundled one loads, typos are named, tiny shrinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.lung_detector.recipe import DEFAULT_RECIPE, load_recipe, tiny


def test_bundled_recipe_loads_and_resolves_data_relative_to_itself() -> None:
    r = load_recipe(DEFAULT_RECIPE)
    assert r.labels[0] == "b_line" and "pleural_line" in r.labels
    assert r.pocus_dir().is_absolute()
    assert r.input_spec().view == "scanlines" and r.input_spec().hw == (128, 128)
    assert r.postprocess == ("consensus_b_lines",)
    t = tiny(r)
    assert t.train.steps < r.train.steps and t.labels == r.labels


def test_unknown_keys_are_named_with_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "r.toml"
    bad.write_text('name = "x"\n[train]\nstepz = 3\n')
    with pytest.raises(ValueError, match=r"r\.toml: \[train\]: unknown key\(s\) \['stepz'\]"):
        load_recipe(bad)
    bad.write_text('colour = "x"\n')
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        load_recipe(bad)
