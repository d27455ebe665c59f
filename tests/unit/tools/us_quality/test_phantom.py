"""Phantom frames for us-quality: labels from the phantom's truth, disjoint seeds, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from firmware_bridge.phantom import frames, single
from tools.us_quality import LABELS
from tools.us_quality.phantom import CASES, SEED_BASE, label_of, phantom_set, scene_jobs


def _truth(events: tuple[str, ...] = (), **kw: object):  # type: ignore[no-untyped-def]
    _, t = next(iter(frames(single("lung", events, duration_s=0.1, **kw), fps=10, seed=3)))
    return t


def test_labels_follow_the_phantom_truth() -> None:
    assert LABELS[label_of(_truth(b_line_count=6))] == "diagnostic"  # type: ignore[index]
    assert LABELS[label_of(_truth(effusion=True))] == "diagnostic"  # type: ignore[index]
    assert LABELS[label_of(_truth(("no_contact",)))] == "no_contact"  # type: ignore[index]
    assert LABELS[label_of(_truth(("rib_shadow",), shadow_from=0.0, shadow_to=0.6))] == "shadow"  # type: ignore[index]
    assert LABELS[label_of(_truth(("gain_up",)))] == "gain_high"  # type: ignore[index]
    assert LABELS[label_of(_truth(("gain_down",)))] == "gain_low"  # type: ignore[index]


def test_ambiguous_truth_is_left_out() -> None:
    t = _truth(b_line_count=2)
    assert label_of(dataclasses.replace(t, shadow_fraction=0.28)) is None
    assert label_of(dataclasses.replace(t, gain_offset_db=8.0)) is None
    assert LABELS[label_of(dataclasses.replace(t, shadow_fraction=0.1))] == "diagnostic"  # type: ignore[index]


def test_splits_use_disjoint_scene_seeds() -> None:
    seeds = {s: {seed for _, seed in scene_jobs(s, 400, 0)} for s in SEED_BASE}
    assert all(len(v) == 400 for v in seeds.values())
    assert not (seeds["train"] & seeds["val"]) and not (seeds["train"] & seeds["test"])
    assert not (seeds["val"] & seeds["test"])
    cases = [ci for ci, _ in scene_jobs("train", len(CASES) * 4, 0)]
    assert set(cases) == set(range(len(CASES))), "every case gets scenes"


def test_phantom_set_is_deterministic_and_labelled() -> None:
    a = phantom_set("val", 20, 0, workers=1)
    b = phantom_set("val", 20, 0, workers=1)
    assert len(a) > 0 and a.images.shape[1:] == (128, 128) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images[:4], phantom_set("test", 20, 0, workers=1).images[:4])


def test_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown phantom split 'dev'"):
        phantom_set("dev", 1, 0)
