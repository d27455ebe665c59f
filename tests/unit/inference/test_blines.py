"""The consensus B-line detector on scan-line images whose B-lines are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from edge.inference.blines import detect, percentile, runs

H = W = 128
PLEURA = 30


def _lung(rng: np.random.Generator, a_lines: bool = True) -> np.ndarray:
    """Soft tissue, a bright pleural line, then normal lung: A-lines fading with depth."""
    img = np.full((H, W), 40.0)
    img[:PLEURA] = 70.0
    img[PLEURA - 1 : PLEURA + 2] = 200.0
    depth = np.arange(H - PLEURA - 2, dtype=np.float64)
    img[PLEURA + 2 :] = (60.0 * np.exp(-depth / 25.0) + 15.0)[:, None]
    if a_lines:
        for k in (2, 3):
            row = PLEURA * k
            if row < H - 1:
                img[row : row + 2] += 120.0 * 0.5 ** (k - 1)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _b_line(img: np.ndarray, col: int, width: int = 3, level: float = 150.0, fade: float = 0.0) -> None:
    rows = np.arange(PLEURA + 1, H)
    gain = 1.0 - fade * (rows - rows[0]) / (rows[-1] - rows[0])
    img[PLEURA + 1 :, col : col + width] = np.clip(level * gain[:, None], 0, 255).astype(np.uint8)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_normal_lung_with_a_lines_has_no_b_line(rng: np.random.Generator) -> None:
    got = detect(_lung(rng))
    assert abs(got.pleura_row - PLEURA) <= 2
    assert got.count == 0 and got.lines == () and got.confluent == ()


def test_three_discrete_b_lines_are_counted_at_their_columns(rng: np.random.Generator) -> None:
    img = _lung(rng)
    for c in (30, 62, 94):
        _b_line(img, c)
    got = detect(img)
    assert len(got.lines) == 3 and got.count == 3
    assert [abs((a + b) / 2 - (c + 1.5)) <= 2 for (a, b), c in zip(got.lines, (30, 62, 94))] == [True] * 3


def test_a_line_that_fades_before_the_bottom_is_not_a_b_line(rng: np.random.Generator) -> None:
    img = _lung(rng)
    _b_line(img, 60, fade=0.95)  # a comet tail: bright under the pleura, gone at depth
    assert detect(img).count == 0


def test_confluent_b_lines_count_by_width(rng: np.random.Generator) -> None:
    img = _lung(rng)
    img[PLEURA + 2 :, 20:100] = 170  # white lung: 80 of 128 columns bright to the bottom
    got = detect(img)
    assert got.confluent and got.count >= 5


def test_the_window_between_two_rib_shadows_is_not_a_b_line(rng: np.random.Generator) -> None:
    img = _lung(rng, a_lines=False)
    img[PLEURA + 2 :, 35:93] = 90  # a wide window that does not fade, between two rib shadows
    img[:, :35] = 5
    img[:, 93:] = 5
    assert detect(img).lines == ()


def test_runs_finds_each_run() -> None:
    assert runs(np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)) == [(1, 3), (4, 5), (7, 8)]
    assert runs(np.zeros(4, bool)) == []


def test_one_line_one_box_and_the_lines_the_model_missed_are_added(rng: np.random.Generator) -> None:
    from edge.inference.blines import with_consensus

    img = _lung(rng)
    for c in (30, 62, 94):
        _b_line(img, c, width=5)
    # the model: the line at 30 boxed twice (a wide line split), the line at 62 once, 94 missed,
    # and one box of its own at column 10, where the consensus sees nothing
    boxes = np.array([[29, 30, 32, 128], [32, 30, 35, 128], [62, 30, 66, 128], [9, 30, 12, 128]], np.float32)
    scores = np.array([0.6, 0.8, 0.7, 0.9], np.float32)
    ids = np.zeros(4, np.int64)
    b, s, _ = with_consensus(boxes, scores, ids, img, 0)
    centres = sorted(round(float(x0 + x1) / 2) for x0, _, x1, _ in b)
    assert centres == [10, 34, 64, 96], (
        "split line merged (the better box kept), own box kept, missed one added"
    )
    assert s.max() == 1.0 and sorted(s.tolist())[:3] == pytest.approx([0.7, 0.8, 0.9])
    # a class other than b_line is never touched
    _, _, i2 = with_consensus(boxes, scores, np.ones(4, np.int64), img, 0)
    assert (i2 == 1).sum() == 4 and (i2 == 0).sum() == 3


@pytest.mark.parametrize("q", [70, 90, 50, 0, 100, 33.3])
def test_percentile_is_numpys_linear_percentile(rng: np.random.Generator, q: float) -> None:
    """To float32 rounding: numpy's own interpolation arithmetic moved between releases (2.2 on
    Python 3.10 differs from 2.4 on 3.11+ by a few units in the last place; bit for bit with 2.4)."""
    for shape in [(70, 128), (5, 128), (1, 7), (2, 3), (128, 96)]:
        for values in (rng.normal(100, 40, shape), rng.integers(0, 3, shape), np.full(shape, 7.5)):
            a = values.astype(np.float32)
            for axis in (0, 1):
                want = np.percentile(a, q, axis=axis)
                got = percentile(a, q, axis)
                assert got.dtype == want.dtype, (shape, axis)
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_detect_on_uint8_gives_what_numpys_percentile_gave(rng: np.random.Generator) -> None:
    # The float path still runs np.percentile: the fast uint8 path must find exactly the same.
    scans = [_lung(rng), _lung(rng, a_lines=False)]
    for col in (20, 60, 100):
        img = _lung(rng)
        _b_line(img, col)
        scans.append(img)
    scans += [rng.integers(0, 256, (H, W), dtype=np.uint8) for _ in range(20)]
    for scan in scans:
        for valid in (None, np.pad(np.ones((H, W - 20), bool), ((0, 0), (10, 10)))):
            assert detect(scan, valid) == detect(scan.astype(np.float32), valid)
