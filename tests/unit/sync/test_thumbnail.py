"""Thumbnails: small JPEGs with the overlay; ultrasound masked or none at all (fail closed)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from edge.deid.pixels import blackout_outside, region_mask
from edge.frames import Frame, Geometry, UltrasoundRegion
from edge.render.overlay import compose
from edge.results import Box, Finding, ModelInfo, Quality, Result, StageTimes, new_result_id
from edge.sync.jpeg import jpeg_size
from edge.sync.thumbnail import ThumbnailUnavailable, load_blackout, make_thumbnail, scan_rects


def _result(seq: int) -> Result:
    quality = Quality("diagnostic", 0.9, True, {"diagnostic": 0.9})
    findings = (Finding("nodule", 0.9, Box(100, 100, 300, 260)),)
    models = (ModelInfo("m", "1", "ab" * 32, "int8", "onnxruntime", "CPU"),)
    return Result(new_result_id(), seq, 0.0, "x", "DX", quality, findings, models, StageTimes(0, 1, 2, 3, 4))


def test_xray_thumbnail_is_a_small_jpeg_with_the_overlay() -> None:
    image = np.full((600, 800), 60, np.uint8)
    frame = Frame(image, 3, 0, "dicom://", modality="DX", meta={"BurnedInAnnotation": "NO"})
    jpeg = make_thumbnail(frame, _result(3), long_side=200, quality=85)
    assert jpeg_size(jpeg) == (200, 150)
    assert len(jpeg) < 20_000
    drawn = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    plain = cv2.imdecode(cv2.imencode(".jpg", cv2.resize(image, (200, 150)))[1], cv2.IMREAD_COLOR)
    assert np.abs(drawn.astype(int) - plain.astype(int)).max() > 100  # the box and meter are drawn
    small = Frame(
        np.zeros((50, 40, 3), np.uint8), 1, 0, "x", modality="DX", meta={"BurnedInAnnotation": "NO"}
    )
    assert jpeg_size(make_thumbnail(small, None, long_side=256)) == (40, 50)  # never enlarged


def test_ultrasound_is_masked_with_the_frames_regions() -> None:
    regions = (UltrasoundRegion(10, 20, 90, 70), UltrasoundRegion(100, 20, 150, 70))
    frame = Frame(np.full((80, 160, 3), 200, np.uint8), 0, 0, "x", geometry=Geometry(regions=regions))
    seen: list[Sequence[tuple[int, int, int, int]]] = []

    def blackout(image: np.ndarray, rects: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
        seen.append(rects)
        return np.zeros_like(image)

    jpeg = make_thumbnail(frame, None, blackout=blackout)
    assert seen == [[(10, 20, 90, 70), (100, 20, 150, 70)]] == [scan_rects(frame)]
    out = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert out[60:, 100:].max() < 30  # what was encoded is the masked image


def test_fail_closed() -> None:
    us = Frame(np.zeros((40, 40, 3), np.uint8), 9, 0, "probe://", geometry=Geometry())
    with pytest.raises(ThumbnailUnavailable, match="no masking function"):
        make_thumbnail(us, None, blackout=None)
    with pytest.raises(ThumbnailUnavailable, match="ultrasound region unknown"):
        make_thumbnail(us, None, blackout=lambda image, rects: image)
    deep = Frame(np.zeros((40, 40), np.uint16), 1, 0, "x", modality="CR")
    with pytest.raises(ThumbnailUnavailable, match="uint16"):
        make_thumbnail(deep, None)


@pytest.mark.parametrize(("meta", "said"), [({"BurnedInAnnotation": "YES"}, '"YES"'), ({}, "absent"),
                                            ({"BurnedInAnnotation": " "}, "absent")])  # fmt: skip
def test_an_x_ray_that_may_carry_burned_in_text_gets_no_thumbnail(meta: dict[str, str], said: str) -> None:
    for modality in ("CR", "DX"):
        film = Frame(np.full((60, 80, 3), 90, np.uint8), 4, 0, "dicom+scp://", modality=modality, meta=meta)
        with pytest.raises(
            ThumbnailUnavailable, match=f"Burned In Annotation {said} and no known clean region"
        ):
            make_thumbnail(film, _result(4))
    clean = Frame(
        np.full((60, 80, 3), 90, np.uint8), 4, 0, "x", modality="CR", meta={"BurnedInAnnotation": "no"}
    )
    assert jpeg_size(make_thumbnail(clean, _result(4))) == (80, 60)  # DICOM code strings: case is not meaning


def _overlay_footprint(height: int, width: int) -> np.ndarray:
    """Where the overlay of a thumbnail without a result draws: the pixels compose changes on a black
    or on a white image. Taken from the overlay itself, so no font metric or layout constant of one
    OpenCV release is written into the test."""
    black = np.zeros((height, width, 3), np.uint8)
    white = np.full((height, width, 3), 255, np.uint8)
    on_black = (compose(black, None, None) != black).any(axis=2)
    return np.asarray(on_black | (compose(white, None, None) != white).any(axis=2))


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` grown by ``px`` pixels: a margin for JPEG's 8x8 blocks ringing at sharp edges."""
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def test_the_runtime_masks_with_the_deid_blackout() -> None:
    assert load_blackout() is blackout_outside
    h, w = 96, 192
    rects = [(48, 16, 143, 79)]
    frame = Frame(
        np.full((h, w, 3), 200, np.uint8),
        0,
        0,
        "x",
        geometry=Geometry(regions=(UltrasoundRegion(*rects[0]),)),
    )
    out = cv2.imdecode(np.frombuffer(make_thumbnail(frame, None), np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == (h, w, 3)

    region = region_mask(h, w, rects)
    clear = ~_grow(_overlay_footprint(h, w), 8)  # away from anything the overlay draws
    outside = clear & ~_grow(region, 8)
    inside = clear & ~_grow(~region, 8)
    # Most of both areas stays clear of the overlay, so the checks below look at real pixels.
    assert outside.sum() > 0.5 * (~region).sum() and inside.sum() > 0.3 * region.sum()
    assert out[outside].max() < 30  # outside the ultrasound region: blacked out
    assert out[inside].min() > 170  # inside: the image is kept


def test_nothing_outside_the_regions_reaches_the_thumbnail() -> None:
    rect = UltrasoundRegion(48, 16, 143, 79)
    rng = np.random.default_rng(0)
    plain = np.full((96, 192, 3), 200, np.uint8)
    burned = rng.integers(0, 256, plain.shape, dtype=np.uint8)  # "text" everywhere ...
    burned[16:80, 48:144] = plain[16:80, 48:144]  # ... but inside the region the same scan
    jpegs = [
        make_thumbnail(Frame(image, 0, 0, "x", geometry=Geometry(regions=(rect,))), _result(0))
        for image in (plain, burned)
    ]
    assert jpegs[0] == jpegs[1]


def test_the_thumbnail_counts_what_the_screen_counts() -> None:
    """With the chain's counted labels, the clip score's badge is drawn as on the screen."""
    import dataclasses

    from edge.clip_score import ClipScore

    image = np.full((600, 800), 60, np.uint8)
    frame = Frame(image, 3, 0, "dicom://", modality="DX", meta={"BurnedInAnnotation": "NO"})
    score = ClipScore("b_line", 2.4, 2.4, 40, 2.9, 3.0, True, False, "start")
    result = dataclasses.replace(
        _result(3), findings=(Finding("b_line", 0.9, Box(100, 100, 120, 500)),), clip_scores=(score,)
    )
    counted = (("b_line", "m"),)

    def decoded(jpeg: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)

    plain = decoded(make_thumbnail(frame, result, long_side=400, quality=95))
    with_badge = decoded(make_thumbnail(frame, result, long_side=400, quality=95, counted=counted))
    assert np.abs(with_badge - plain).max() > 100  # the badge and its number are drawn
    screen = compose(np.dstack([image] * 3), result, None, counted=counted)
    assert (
        np.abs(cv2.resize(screen, (400, 300), interpolation=cv2.INTER_AREA).astype(int) - with_badge).mean()
        < 4
    )
