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
    RECT_CROP_P,
    augment_geometry,
    beyond_penetration,
    inscribed_rectangle,
    make_sample,
    rect_crop,
    scanner_look,
    set_rect_crop,
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


def test_the_inscribed_rectangle_lies_inside_the_fan() -> None:
    _, mask = convex_frame()
    boxes = [inscribed_rectangle(mask, np.random.default_rng(seed)) for seed in SEEDS]
    found = [b for b in boxes if b is not None]
    assert len(found) >= len(SEEDS) // 2
    for x0, y0, x1, y1 in found:
        assert mask[y0:y1, x0:x1].all()
        assert x1 - x0 >= 32 and y1 - y0 >= 0.6 * mask.any(1).sum()  # most of the fan's depth


def test_a_rectangle_has_no_inscribed_rectangle_to_crop() -> None:
    _, mask = linear_frame()
    assert all(inscribed_rectangle(mask, np.random.default_rng(seed)) is None for seed in SEEDS)


@pytest.fixture
def rect_share():  # type: ignore[no-untyped-def]
    before = rect_crop()
    yield set_rect_crop
    set_rect_crop(before)


def test_rect_crop_shows_a_fan_as_a_rectangle_only_when_asked(rect_share) -> None:  # type: ignore[no-untyped-def]
    img, mask = convex_frame()
    assert rect_crop() == RECT_CROP_P == 0.2  # the 3.0 recipe
    rect_share(0.0)  # the 2.x recipes
    draws = [augment_geometry(img, mask, np.random.default_rng(seed)) for seed in SEEDS]
    rect_share(1.0)
    cropped = [augment_geometry(img, mask, np.random.default_rng(seed)) for seed in SEEDS]

    def rectangles(samples: list[tuple[np.ndarray, np.ndarray]]) -> int:  # masks that fill their box
        return sum(bool(m[np.ix_(m.any(1), m.any(0))].all()) for _, m in samples)

    assert rectangles(draws) <= 2 and rectangles(cropped) >= len(SEEDS) // 2
    assert all(a[~m].max(initial=0) == 0 for a, m in cropped)
    rect_share(0.0)  # 0 draws exactly as before the option existed
    again = [augment_geometry(img, mask, np.random.default_rng(seed)) for seed in SEEDS]
    assert all(np.array_equal(a, b) and np.array_equal(ma, mb) for (a, ma), (b, mb) in zip(draws, again))


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
