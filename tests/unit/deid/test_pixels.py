from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut

from edge.deid.errors import DeidError
from edge.deid.pixels import blackout_outside, clean_pixels, region_mask, ultrasound_regions
from tools.deid.markers import REGION, marker_study, save, synthetic_image


# -- blackout_outside: the pure function the runtime also uses for live frames and thumbnails --------------
def test_blackout_keeps_inclusive_rectangles_and_zeroes_the_rest() -> None:
    img = np.full((6, 8, 3), 200, np.uint8)
    out = blackout_outside(img, [(1, 2, 3, 4)])
    assert out[2:5, 1:4].min() == 200  # x 1..3, y 2..4 inclusive
    mask = np.ones((6, 8), bool)
    mask[2:5, 1:4] = False
    assert out[mask].max() == 0
    assert img.min() == 200  # the input is untouched


def test_blackout_union_clipping_gray_and_fill() -> None:
    img = np.full((5, 5), 9, np.uint16)
    out = blackout_outside(img, [(0, 0, 0, 0), (3, 3, 99, 99)], fill=1)
    assert out[0, 0] == 9 and out[4, 4] == 9 and out[3, 3] == 9
    assert out[1, 1] == 1 and out[0, 4] == 1
    assert out.dtype == np.uint16


def test_no_rectangle_blacks_out_everything() -> None:
    assert blackout_outside(np.ones((3, 3), np.uint8), []).max() == 0


@pytest.mark.parametrize(
    ("rects", "message"),
    [
        ([(5, 0, 1, 1)], "x0 <= x1"),
        ([(0, 0, 1)], "expected \\(x0, y0, x1, y1\\)"),
        ([(-1, 0, 1, 1)], "0 <= x0"),
    ],
)
def test_bad_rectangles_are_named(rects: list[tuple[int, ...]], message: str) -> None:
    with pytest.raises(DeidError, match=message):
        region_mask(4, 4, rects)


def test_bad_shape_is_refused() -> None:
    with pytest.raises(DeidError, match="HxW or HxWxC"):
        blackout_outside(np.zeros((2, 2, 2, 3), np.uint8), [(0, 0, 1, 1)])


# -- DICOM pixels -------------------------------------------------------------------------------------------
def _inside(shape: tuple[int, int], rects: list[tuple[int, int, int, int]]) -> np.ndarray:
    return region_mask(shape[0], shape[1], rects)


def _synthetic(tmp_path: Path) -> pydicom.Dataset:
    (ds,), _ = marker_study(1)
    return pydicom.dcmread(save(ds, tmp_path / "us.dcm"))


def test_synthetic_us_is_cleaned_outside_its_region(tmp_path: Path) -> None:
    ds = _synthetic(tmp_path)
    outcome = clean_pixels(ds)
    assert outcome.action == "cleaned" and outcome.rects == (REGION,)
    arr = ds.pixel_array
    inside = _inside(arr.shape, [REGION])
    assert np.array_equal(arr[inside], synthetic_image()[inside])
    assert arr[~inside].max() == 0
    assert ds.BurnedInAnnotation == "NO"


@pytest.mark.parametrize(
    "name",
    [
        "OBXXXX1A.dcm",  # palette, native
        "OBXXXX1A_rle_2frame.dcm",  # palette, RLE, two frames
        "OBXXXX1A_expb_2frame.dcm",  # palette, big endian
        "JPGLosslessP14SV1_1s_1f_8b.dcm",  # monochrome, JPEG lossless
        "gdcm-US-ALOKA-16.dcm",  # palette with 16-bit entries, implicit VR
    ],
)
def test_vendor_ultrasound_is_cleaned_outside_its_regions(
    vendor_file: Callable[[str], Path], name: str
) -> None:
    path = vendor_file(name)
    ds = pydicom.dcmread(path)
    before = ds.pixel_array.copy()
    rects = ultrasound_regions(ds)
    outcome = clean_pixels(ds)
    assert outcome.action == "cleaned", outcome.reason
    after = ds.pixel_array
    assert after.shape == before.shape
    inside = _inside(ds.pixel_array.shape[-2:], rects)
    assert np.array_equal(after[..., inside], before[..., inside])
    outside = after[..., ~inside]
    if ds.PhotometricInterpretation == "PALETTE COLOR":  # black is the darkest palette entry, not index 0
        rgb = apply_color_lut(outside, ds)
        assert (
            rgb.max() == rgb.min() == apply_color_lut(np.arange(256, dtype=np.uint8), ds).sum(-1).min() // 3
        )
    else:
        assert outside.max() == 0


def test_jpeg_ybr_cine_is_decoded_to_rgb(vendor_file: Callable[[str], Path]) -> None:
    ds = pydicom.dcmread(vendor_file("color3d_jpeg_baseline.dcm"))
    n = int(ds.NumberOfFrames)
    outcome = clean_pixels(ds)
    assert outcome.action == "cleaned"
    assert ds.PhotometricInterpretation == "RGB" and ds.PlanarConfiguration == 0
    arr = ds.pixel_array
    assert arr.shape[0] == n and arr.shape[-1] == 3
    assert arr[:, ~_inside(arr.shape[1:3], list(outcome.rects))].max() == 0


def test_us_without_regions_and_unknown_annotation_is_refused(vendor_file: Callable[[str], Path]) -> None:
    ds = pydicom.dcmread(vendor_file("US1_UNCR.dcm"))
    outcome = clean_pixels(ds)
    assert outcome.action == "refused"
    assert "Burned In Annotation is absent (unknown)" in outcome.reason and "LOGIQ 700" in outcome.reason


def test_configured_rectangles_clean_a_probe_without_regions(vendor_file: Callable[[str], Path]) -> None:
    ds = pydicom.dcmread(vendor_file("US1_J2KR.dcm"))
    before = ds.pixel_array.copy()  # YBR_RCT decoded to RGB
    outcome = clean_pixels(ds, {"LOGIQ 700": [(100, 50, 539, 429)]})
    assert outcome.action == "cleaned" and "LOGIQ 700" in outcome.reason
    inside = _inside(before.shape[:2], [(100, 50, 539, 429)])
    assert np.array_equal(ds.pixel_array[inside], before[inside])
    assert ds.pixel_array[~inside].max() == 0
    assert ds.PhotometricInterpretation == "RGB"


def test_cr_with_unknown_annotation_is_refused_and_monochrome1_black_is_max(
    vendor_file: Callable[[str], Path],
) -> None:
    ds = pydicom.dcmread(vendor_file("RG1_UNCR.dcm"))
    assert clean_pixels(ds).action == "refused"
    ds.BurnedInAnnotation = "YES"
    assert "Burned In Annotation is YES" in clean_pixels(ds).reason
    model = str(ds.ManufacturerModelName)
    outcome = clean_pixels(ds, {model: [(0, 0, 99, 99)]})
    assert outcome.action == "cleaned"
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert ds.pixel_array[200:, 200:].min() == (1 << int(ds.BitsStored)) - 1  # white value = black on display


def test_annotation_no_without_regions_is_kept_untouched(vendor_file: Callable[[str], Path]) -> None:
    ds = pydicom.dcmread(vendor_file("emri_small.dcm"))
    data = ds.PixelData
    outcome = clean_pixels(ds)
    assert outcome.action == "kept" and ds.PixelData == data


def test_no_pixel_data_is_nothing_to_do() -> None:
    assert clean_pixels(pydicom.Dataset()).action == "none"


def test_undecodable_pixels_are_refused(tmp_path: Path) -> None:
    ds = _synthetic(tmp_path)
    ds.PixelData = b"\x00" * 10  # far too short for 24x32
    outcome = clean_pixels(ds)
    assert outcome.action == "refused" and "cannot be decoded" in outcome.reason


def test_malformed_region_is_named(tmp_path: Path) -> None:
    ds = _synthetic(tmp_path)
    del ds.SequenceOfUltrasoundRegions[0].RegionLocationMaxY1
    with pytest.raises(DeidError, match="Sequence of Ultrasound Regions item 0"):
        clean_pixels(ds)
