"""Scanner looks and geometry: what a diagnostic frame may look like (no data set, no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.tools.us_quality.test_degrade import convex_frame, linear_frame
from tools.us_quality.degrade import DEGRADATIONS, sector_geometry
from tools.us_quality.looks import (
    DEPTH_LOOK,
    MAX_CLIPPED,
    MIN_P99,
    augment_geometry,
    beyond_penetration,
    make_sample,
    scanner_look,
)

SEEDS = range(16)


@pytest.mark.parametrize("make", [convex_frame, linear_frame])
def test_a_look_loses_no_information_on_purpose(make) -> None:  # type: ignore[no-untyped-def]
    img, mask = make()
    before = (img[mask] >= 254).mean()
    for seed in SEEDS:
        out = scanner_look(img, mask, np.random.default_rng(seed))
        assert out.dtype == np.uint8 and out.shape == img.shape
        assert (out[~mask] == img[~mask]).all(), "the surround is left as it is"
        assert (out[mask] >= 254).mean() <= before + MAX_CLIPPED + 0.01, seed
        assert np.percentile(out[mask], 99) >= MIN_P99 - 6, seed  # blur and noise may nudge it


def test_looks_span_darker_and_brighter_scanners() -> None:
    img, mask = convex_frame()
    means = [scanner_look(img, mask, np.random.default_rng(s))[mask].mean() for s in range(60)]
    base = img[mask].mean()
    assert min(means) < 0.7 * base and max(means) > 1.15 * base


def test_augment_geometry_keeps_image_and_mask_aligned() -> None:
    img, mask = convex_frame()
    for seed in SEEDS:
        a, m = augment_geometry(img, mask, np.random.default_rng(seed))
        assert a.dtype == np.uint8 and a.shape == m.shape and m.dtype == bool
        assert a[~m].max(initial=0) == 0  # the surround stays black
        assert m.mean() > 0.1


@pytest.mark.parametrize("label", sorted(DEGRADATIONS))
def test_make_sample_is_deterministic_and_gray_with_its_mask(label: str) -> None:
    img, mask = linear_frame()
    a, ma = make_sample(img, mask, label, np.random.default_rng(3))
    b, mb = make_sample(img, mask, label, np.random.default_rng(3))
    assert a.ndim == 2 and a.dtype == np.uint8 and a.shape == ma.shape
    assert np.array_equal(a, b) and np.array_equal(ma, mb)


@pytest.mark.parametrize("make", [convex_frame, linear_frame])
def test_beyond_penetration_fades_only_the_far_field(make) -> None:  # type: ignore[no-untyped-def]
    img, mask = make()
    geo = sector_geometry(mask)
    v = np.nan_to_num(geo.v, nan=-1.0)
    lo, hi = DEPTH_LOOK["faded_area"]
    for seed in SEEDS:
        out = beyond_penetration(img, geo, np.random.default_rng(seed))
        assert (out[~mask] == img[~mask]).all(), "the surround is left as it is"
        near = mask & (v < 0.4)  # the faded share starts below 1 - 0.4 of the sector's pixels at most
        assert np.array_equal(out[near], img[near]), seed
        dark = mask & (out.astype(np.int16) < 0.5 * img.astype(np.int16))
        assert lo * 0.5 <= dark.sum() / mask.sum() <= hi + 0.1, seed  # never most of the sector: not gain_low
