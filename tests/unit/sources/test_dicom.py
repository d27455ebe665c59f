"""dicom://: real vendor files (pydicom-data and pydicom's own test files, read from the installed
packages, never fetched), synthetic files for what they miss, folders and pacing. Bad and vanishing
inputs: ``test_dicom_bad_inputs``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut

import edge.sources.dicom as dicom_module
from edge.errors import SourceError, UnsupportedSourceError
from edge.sources._common import period_ns
from tests.support.dicom import frames_of, opened
from tests.support.sources import read_all

Finder = Callable[[str], Path]
Writer = Callable[..., Path]


def bgr_of_rgb(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


def ybr_full_422(rgb: np.ndarray) -> bytes:
    """RGB uint8 HxWx3 (W even) -> native YBR_FULL_422 bytes: Y0 Y1 Cb Cr for each pair of pixels."""
    f = rgb.astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    cb2 = (cb[:, 0::2] + cb[:, 1::2]) / 2
    cr2 = (cr[:, 0::2] + cr[:, 1::2]) / 2
    out = np.stack([y[:, 0::2], y[:, 1::2], cb2, cr2], axis=-1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).tobytes()


def us_region(
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    *,
    spatial_format: int,
    data_type: int,
    units: tuple[int, int],
    delta: tuple[float, float],
) -> Dataset:
    item = Dataset()
    item.RegionSpatialFormat = spatial_format
    item.RegionDataType = data_type
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
    item.PhysicalUnitsXDirection, item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX, item.PhysicalDeltaY = delta
    return item


# -- real vendor files ------------------------------------------------------------------------------------
VENDOR_FILES = [
    # name, (rows, cols), frames, modality, raw dtype (None: colour kept no raw), what it exercises
    ("US1_UNCR.dcm", (480, 640), 1, "US", None),  # RGB ultrasound, native
    ("US1_J2KR.dcm", (480, 640), 1, "US", None),  # the same, JPEG 2000 lossless (YBR_RCT)
    ("OBXXXX1A.dcm", (600, 800), 1, "US", np.uint8),  # palette colour US with regions
    ("OBXXXX1A_2frame.dcm", (600, 800), 2, "US", np.uint8),  # multi-frame palette
    ("OBXXXX1A_rle_2frame.dcm", (600, 800), 2, "US", np.uint8),  # RLE lossless
    ("OBXXXX1A_expb_2frame.dcm", (600, 800), 2, "US", np.uint8),  # explicit VR big endian
    ("gdcm-US-ALOKA-16.dcm", (480, 640), 1, "US", np.uint16),  # 16-bit palette, implicit VR
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", (768, 1024), 1, "US", np.uint8),  # gray US, JPEG lossless, window
    ("examples_ybr_color.dcm", (240, 320), 30, "US", None),  # JPEG baseline YBR_FULL_422 cine
    ("examples_palette.dcm", (350, 800), 1, "US", np.uint8),
    ("RG1_UNCR.dcm", (1955, 1841), 1, "CR", np.uint16),  # 15-bit MONOCHROME1 CR with window
    ("RG3_UNCR.dcm", (1760, 1760), 1, "CR", np.uint16),  # 10-bit MONOCHROME1 CR
    ("MR_small_jpeg_ls_lossless.dcm", (64, 64), 1, "OT", np.int16),  # JPEG-LS, signed; MR -> OT
    ("emri_small_RLE.dcm", (64, 64), 10, "OT", np.uint16),  # multi-frame MR, RLE
    ("SC_rgb_16bit.dcm", (100, 100), 1, "OT", np.uint16),  # 16-bit RGB shifted to 8
    ("OT-PAL-8-face.dcm", (480, 640), 1, "OT", np.uint8),  # no 'DICM' preamble (ACR-NEMA style)
    ("image_dfl.dcm", (512, 512), 1, "OT", np.uint8),  # deflated transfer syntax
]


@pytest.mark.parametrize(("name", "shape", "n_frames", "modality", "raw_dtype"), VENDOR_FILES)
def test_vendor_file_decodes(
    dicom_file: Finder, name: str, shape: tuple[int, int], n_frames: int, modality: str, raw_dtype: Any
) -> None:
    path = dicom_file(name)
    src = opened(f"dicom://{path}?realtime=0")
    frames = read_all(src)
    src.close()
    assert len(frames) == n_frames and src.eof
    assert src.info.frame_count == n_frames and (src.info.height, src.info.width) == shape
    for i, f in enumerate(frames):
        assert f.image.shape == (*shape, 3) and f.image.dtype == np.uint8
        assert 1.0 < float(f.image.mean()) < 250.0 and float(f.image.std()) > 5.0
        assert f.modality == modality and f.source_id == name
        assert f.meta["file"] == str(path) and f.meta["frame_index"] == i
        assert f.meta["NumberOfFrames"] == n_frames
        if raw_dtype is None:
            assert f.raw is None
        else:
            assert f.raw is not None and f.raw.dtype == raw_dtype and f.raw.shape[:2] == shape


def test_rgb_and_lossless_j2k_are_identical(dicom_file: Finder) -> None:
    (uncompressed,) = frames_of(dicom_file("US1_UNCR.dcm"))
    (lossless,) = frames_of(dicom_file("US1_J2KR.dcm"))
    (lossy,) = frames_of(dicom_file("US1_J2KI.dcm"))
    assert (uncompressed.image == lossless.image).all()
    assert np.abs(uncompressed.image.astype(int) - lossy.image).mean() < 3
    ds = pydicom.dcmread(dicom_file("US1_UNCR.dcm"))
    assert (uncompressed.image == bgr_of_rgb(ds.pixel_array)).all()  # RGB -> BGR, nothing else
    assert uncompressed.meta["PhotometricInterpretation"] == "RGB"


@pytest.mark.parametrize(
    ("name", "max_diff", "mean_diff"),
    [
        ("SC_ybr_full_uncompressed.dcm", 8, 1.0),
        ("SC_ybr_full_422_uncompressed.dcm", 8, 1.0),
        ("SC_rgb_dcmtk_+eb+cy+np.dcm", 255, 4.0),  # JPEG baseline, YBR_FULL_422, lossy
        ("SC_rgb_rle.dcm", 0, 0.0),
    ],
)
def test_ybr_becomes_the_same_colours_as_rgb(
    dicom_file: Finder, name: str, max_diff: int, mean_diff: float
) -> None:
    (rgb,) = frames_of(dicom_file("SC_rgb.dcm"))
    (other,) = frames_of(dicom_file(name))
    diff = np.abs(rgb.image.astype(int) - other.image)
    assert diff.max() <= max_diff and diff.mean() <= mean_diff


def test_palette_colour_is_applied(dicom_file: Finder) -> None:
    for name in ("OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm"):
        path = dicom_file(name)
        (frame,) = frames_of(path)
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array
        assert frame.raw is not None and (frame.raw == stored).all()
        rgb = apply_color_lut(stored, ds)
        expected = bgr_of_rgb((rgb >> 8).astype(np.uint8))  # both palettes have 16-bit entries
        assert (frame.image == expected).all()
        b, g, r = (frame.image[..., c].astype(int) for c in range(3))
        assert ((b != g) | (g != r)).mean() > 0.001, "a palette image must have some colour"


def test_palette_encodings_agree(dicom_file: Finder) -> None:
    native = frames_of(dicom_file("OBXXXX1A_2frame.dcm"))
    for name in ("OBXXXX1A_rle_2frame.dcm", "OBXXXX1A_expb_2frame.dcm"):
        other = frames_of(dicom_file(name))
        assert all((a.image == b.image).all() for a, b in zip(native, other, strict=True))


def test_16_bit_cr_keeps_raw_and_applies_the_window(dicom_file: Finder) -> None:
    path = dicom_file("RG1_UNCR.dcm")
    (frame,) = frames_of(path)
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    assert frame.raw is not None and frame.raw.dtype == np.uint16 and (frame.raw == stored).all()
    assert frame.modality == "CR" and frame.meta["BitsStored"] == 15
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)  # 15000 / 30000, no rescale
    for y, x in ((0, 0), (977, 920), (1500, 300), (100, 1800)):
        value = float(stored[y, x])
        unit = min(1.0, max(0.0, (value - (c - 0.5)) / (w - 1) + 0.5))
        expected = round((1.0 - unit) * 255)  # MONOCHROME1: inverted for display
        assert abs(int(frame.image[y, x, 0]) - expected) <= 1, (y, x, value)
        assert frame.image[y, x, 0] == frame.image[y, x, 1] == frame.image[y, x, 2]
    assert frame.geometry.pixel_spacing_mm is None  # the file says 0.000 \ 0.000: unknown
    (j2k,) = frames_of(dicom_file("RG1_J2KR.dcm"))
    assert j2k.raw is not None and (j2k.raw == stored).all() and (j2k.image == frame.image).all()


def test_real_voi_lut_and_modality_lut(dicom_file: Finder) -> None:
    path = dicom_file("vlut_04.dcm")
    (frame,) = frames_of(path)
    ds = pydicom.dcmread(path)
    lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
    first = int(ds.VOILUTSequence[0].LUTDescriptor[1])
    index = np.clip(ds.pixel_array.astype(int) - first, 0, len(lut) - 1)
    expected = np.rint((lut[index] - lut.min()) / (lut.max() - lut.min()) * 255)
    assert np.abs(frame.image[..., 0].astype(int) - expected).max() <= 1

    path = dicom_file("mlut_18.dcm")  # modality LUT sequence, no window: min-max of the LUT output
    (frame,) = frames_of(path)
    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    expected = np.rint((values - values.min()) / (values.max() - values.min()) * 255)
    assert np.abs(frame.image[..., 0].astype(int) - expected).max() <= 1
    assert frame.raw is not None and frame.raw.dtype == np.int16


def test_ultrasound_regions_become_geometry(dicom_file: Finder) -> None:
    (frame,) = frames_of(dicom_file("OBXXXX1A.dcm"))
    geo = frame.geometry
    assert len(geo.regions) == 2
    image_region, doppler = geo.regions
    assert (image_region.x0, image_region.y0, image_region.x1, image_region.y1) == (120, 60, 800, 518)
    assert (image_region.spatial_format, image_region.data_type) == (1, 1)
    assert image_region.delta_x_mm == pytest.approx(0.2622878766)  # 0.02622878766 cm
    assert image_region.delta_y_mm == pytest.approx(0.2622878766)
    assert doppler.delta_x_mm is None  # seconds, not cm
    assert doppler.delta_y_mm is None
    assert geo.pixel_spacing_mm == pytest.approx((0.2622878766, 0.2622878766))  # from the 2D region
    assert geo.depth_mm == pytest.approx((518 - 60 + 1) * 0.2622878766)

    (aloka,) = frames_of(dicom_file("gdcm-US-ALOKA-16.dcm"))
    assert len(aloka.geometry.regions) == 3
    assert aloka.geometry.pixel_spacing_mm == pytest.approx((0.3826530650, 0.3826530650))

    (mr,) = frames_of(dicom_file("MR_small_jpeg_ls_lossless.dcm"))
    assert mr.geometry.pixel_spacing_mm == (0.3125, 0.3125) and mr.geometry.regions == ()


def test_multi_frame_cine_is_paced_at_frame_time(dicom_file: Finder) -> None:
    src = opened(f"dicom://{dicom_file('examples_ybr_color.dcm')}")  # FrameTime 33.333 ms
    assert src.info.realtime is True and src.info.fps == pytest.approx(1000 / 33.333)
    frames = read_all(src, limit=3)
    src.close()
    assert set(np.diff([f.t_acquired_ns for f in frames])) == {period_ns(1000 / 33.333)}


def test_frames_are_decoded_one_at_a_time(dicom_file: Finder, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    real = dicom_module.iter_pixels

    def counting(*args: Any, **kwargs: Any) -> Iterator[np.ndarray]:
        assert isinstance(args[0], Path)  # from the file, not a dataset held in memory
        for arr in real(*args, **kwargs):
            decoded.append(1)
            yield arr

    monkeypatch.setattr(dicom_module, "iter_pixels", counting)
    src = opened(f"dicom://{dicom_file('examples_ybr_color.dcm')}?realtime=0")
    assert src.read() is not None
    assert len(decoded) <= 2  # of 30
    src.close()


def test_a_frame_that_fails_to_decode_is_skipped(
    dicom_file: Finder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = dicom_module.iter_pixels

    def flaky(src: Any, *, indices: range, **kwargs: Any) -> Iterator[np.ndarray]:
        for i, arr in zip(indices, real(src, indices=indices, **kwargs), strict=True):
            if i == 3:
                raise ValueError("corrupt fragment")
            yield arr

    monkeypatch.setattr(dicom_module, "iter_pixels", flaky)
    with caplog.at_level(logging.WARNING, logger="edge.sources.dicom"):
        frames = frames_of(dicom_file("emri_small_RLE.dcm"))
    assert [f.meta["frame_index"] for f in frames] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert [f.seq for f in frames] == list(range(9))
    assert "emri_small_RLE.dcm: frame 3 cannot be decoded (corrupt fragment)" in caplog.text


# -- synthetic files for what the vendor files miss --------------------------------------------------------
def test_multi_frame_ybr_422_ultrasound_with_regions(dicom_writer: Writer) -> None:
    rows, cols, n = 16, 24, 3
    rgb_frames = []
    for k in range(n):
        rgb = np.zeros((rows, cols, 3), np.uint8)
        rgb[:, :8] = (200, 30 + 40 * k, 40)
        rgb[:, 8:16] = (20, 180, 60 + 50 * k)
        rgb[:, 16:] = (90, 90, 90)
        rgb_frames.append(rgb)
    regions = [
        us_region(2, 1, 21, 12, spatial_format=1, data_type=1, units=(3, 3), delta=(0.01, 0.02)),
        us_region(0, 13, 23, 15, spatial_format=3, data_type=3, units=(4, 7), delta=(0.005, 0.5)),
    ]
    path = dicom_writer(
        "cine.dcm",
        b"".join(ybr_full_422(rgb) for rgb in rgb_frames),
        rows=rows,
        cols=cols,
        samples=3,
        photometric="YBR_FULL_422",
        frames=n,
        FrameTime=20.0,
        SequenceOfUltrasoundRegions=regions,
    )
    src = opened(f"dicom://{path}")  # multi-frame: realtime by default, at 1000/FrameTime fps
    assert src.info.realtime is True and src.info.fps == 50.0 and src.info.frame_count == n
    frames = read_all(src)
    src.close()
    assert len(frames) == n
    assert set(np.diff([f.t_acquired_ns for f in frames])) == {period_ns(50.0)}
    for rgb, f in zip(rgb_frames, frames, strict=True):
        assert np.abs(f.image.astype(int) - bgr_of_rgb(rgb)).max() <= 3
        assert f.modality == "US" and f.raw is None
    geo = frames[0].geometry
    assert geo.pixel_spacing_mm == pytest.approx((0.2, 0.1))  # (row = y, column = x), cm -> mm
    assert geo.regions[0].delta_x_mm == pytest.approx(0.1) and geo.regions[0].delta_y_mm == pytest.approx(0.2)
    assert geo.regions[1].delta_x_mm is None and geo.regions[1].delta_y_mm is None
    assert geo.regions[1].spatial_format == 3
    meta = frames[0].meta
    assert set(meta) == {
        "Modality",
        "Manufacturer",
        "PhotometricInterpretation",
        "BitsStored",
        "SOPClassUID",
        "SOPInstanceUID",
        "NumberOfFrames",
        "TransferSyntaxUID",
        "file",
        "frame_index",
        "loop_pass",
        "still",
        "content_id",
    }
    # the UIDs are random digits (a "1970" in one would be chance, not a leak)
    text = repr([{k: v for k, v in f.meta.items() if not k.endswith("UID")} for f in frames])
    assert "DOE" not in text and "PID-12345" not in text and "1970" not in text and "2024" not in text


def test_16_bit_dx_monochrome1_with_rescale_and_first_window(dicom_writer: Writer) -> None:
    stored = (np.arange(32 * 40, dtype=np.uint16).reshape(32, 40) * 3).astype(np.uint16)
    path = dicom_writer(
        "dx.dcm",
        stored.tobytes(),
        rows=32,
        cols=40,
        photometric="MONOCHROME1",
        modality="DX",
        bits=16,
        bits_stored=12,
        RescaleSlope=2,
        RescaleIntercept=-100,
        WindowCenter=[2000, 10],
        WindowWidth=[3000, 5],
        ImagerPixelSpacing=[0.15, 0.14],
    )
    (frame,) = frames_of(path)
    assert frame.modality == "DX" and frame.raw is not None
    assert frame.raw.dtype == np.uint16 and (frame.raw == stored).all()
    values = stored.astype(np.float64) * 2 - 100
    unit = np.clip((values - 1999.5) / 2999 + 0.5, 0, 1)
    expected = np.rint((1 - unit) * 255)
    assert np.abs(frame.image[..., 0].astype(int) - expected).max() <= 1
    assert frame.image[0, 0, 0] == 255 and frame.image[-1, -1, 0] < 40  # dark is bright in MONOCHROME1
    assert frame.geometry.pixel_spacing_mm == (0.15, 0.14)


def test_16_bit_dx_with_voi_lut_sequence(dicom_writer: Writer) -> None:
    stored = np.linspace(0, 4095, 24 * 24).astype(np.uint16).reshape(24, 24)
    lut = np.rint(np.sqrt(np.arange(4096) / 4095) * 60000 + 1000).astype(np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", lut.tolist())  # LUTData
    path = dicom_writer(
        "dx_voi.dcm",
        stored.tobytes(),
        rows=24,
        cols=24,
        photometric="MONOCHROME2",
        modality="DX",
        bits=16,
        bits_stored=12,
        VOILUTSequence=[item],
        WindowCenter=100,
        WindowWidth=10,
    )
    (frame,) = frames_of(path)
    expected = np.rint((lut[stored].astype(np.float64) - lut.min()) / (lut.max() - lut.min()) * 255)
    assert np.abs(frame.image[..., 0].astype(int) - expected).max() <= 1  # the LUT wins over the window


@pytest.mark.parametrize(
    ("function", "formula"),
    [
        ("LINEAR_EXACT", lambda x: np.clip((x - 500) / 400 + 0.5, 0, 1)),
        ("SIGMOID", lambda x: 1 / (1 + np.exp(-4 * (x - 500) / 400))),
    ],
)
def test_window_functions(dicom_writer: Writer, function: str, formula: Callable[[np.ndarray], Any]) -> None:
    stored = np.arange(0, 1024, 4, dtype=np.uint16).reshape(16, 16)
    path = dicom_writer(
        "w.dcm",
        stored.tobytes(),
        rows=16,
        cols=16,
        photometric="MONOCHROME2",
        modality="CR",
        bits=16,
        bits_stored=10,
        WindowCenter=500,
        WindowWidth=400,
        VOILUTFunction=function,
    )
    (frame,) = frames_of(path)
    expected = np.rint(formula(stored.astype(np.float64)) * 255)
    assert np.abs(frame.image[..., 0].astype(int) - expected).max() <= 1


def test_16_bit_without_window_is_min_max_scaled(dicom_writer: Writer) -> None:
    stored = np.linspace(1000, 3000, 64).astype(np.int16).reshape(8, 8)
    path = dicom_writer(
        "mr.dcm",
        stored.tobytes(),
        rows=8,
        cols=8,
        photometric="MONOCHROME2",
        modality="MR",
        bits=16,
        signed=True,
    )
    (frame,) = frames_of(path)
    assert frame.modality == "OT"
    assert frame.image.min() == 0 and frame.image.max() == 255
    assert frame.raw is not None and frame.raw.dtype == np.int16


# -- folders ----------------------------------------------------------------------------------------------
def test_folder_reads_good_files_in_name_order_and_logs_bad_ones(
    mixed_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.sources.dicom"):
        src = opened(f"dicom://{mixed_folder}")
        frames = read_all(src)
    src.close()
    assert [(Path(f.meta["file"]).name, f.meta["frame_index"]) for f in frames] == [
        ("a_good.dcm", 0),
        ("c_cine.dcm", 0),
        ("c_cine.dcm", 1),
    ]
    assert [f.seq for f in frames] == [0, 1, 2]
    assert {f.source_id for f in frames} == {"study"}
    assert src.info.realtime is False  # a folder runs as fast as possible unless fps is given
    assert src.info.frame_count == 3
    assert src.info.extra["files"] == 2 and src.info.extra["skipped_files"] == 3
    assert re.search(r"b_garbage\.dcm: not a DICOM file", caplog.text)
    assert re.search(r"notes\.txt: not a DICOM file", caplog.text)
    assert re.search(r"d_truncated\.dcm: truncated", caplog.text)
    assert ".hidden" not in caplog.text


def test_folder_paced_by_fps_and_looped(mixed_folder: Path) -> None:
    src = opened(f"dicom://{mixed_folder}?fps=100&loop=1")
    assert src.info.realtime is True and src.info.frame_count is None
    frames = read_all(src, limit=7)
    src.close()
    assert [f.meta["frame_index"] for f in frames] == [0, 0, 1, 0, 0, 1, 0]
    assert [f.seq for f in frames] == list(range(7))
    assert set(np.diff([f.t_acquired_ns for f in frames])) == {period_ns(100)}


def test_folder_without_a_readable_image(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="empty: folder holds no files"):
        opened(f"dicom://{empty}")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.dcm").write_bytes(b"nothing to see")
    with pytest.raises(UnsupportedSourceError, match=r"junk: none of its 1 files.*x\.dcm: not a DICOM file"):
        opened(f"dicom://{junk}")


def test_loop_on_a_file(dicom_file: Finder) -> None:
    src = opened(f"dicom://{dicom_file('OBXXXX1A_2frame.dcm')}?realtime=0&loop=1")
    frames = read_all(src, limit=5)
    assert not src.eof
    src.close()
    assert [f.meta["frame_index"] for f in frames] == [0, 1, 0, 1, 0]
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]


def test_single_frame_defaults_to_fast_and_fps_paces_it(dicom_file: Finder) -> None:
    src = opened(f"dicom://{dicom_file('US1_UNCR.dcm')}")
    assert src.info.realtime is False
    src.close()
    src = opened(f"dicom://{dicom_file('US1_UNCR.dcm')}?loop=1&fps=200")
    frames = read_all(src, limit=3)
    src.close()
    assert set(np.diff([f.t_acquired_ns for f in frames])) == {period_ns(200)}
