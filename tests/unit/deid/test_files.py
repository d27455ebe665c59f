"""Whole files: the acceptance checks on synthetic marker studies and on the vendor files of pydicom-data."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest

from edge.deid.errors import DeidError
from edge.deid.files import deidentify_file, deidentify_paths
from edge.deid.header import DeidOptions, parse_private_allow_list
from tools.deid.markers import KEEP_PRIVATE, Planted, private_left, text_leaks, value_leaks

KEY = bytes(range(32))


def test_marker_study_leaves_zero_markers_and_stays_consistent(
    tmp_path: Path, marker_files: tuple[list[Path], Planted]
) -> None:
    paths, planted = marker_files
    assert planted.count > 5000  # every table attribute, three depths, private and repeating groups
    for path in paths:  # the inputs really carry them
        assert len(text_leaks(path.read_bytes(), planted)) > 2000
    reports = list(deidentify_paths(paths[0].parent, tmp_path / "out", DeidOptions(key=KEY)))
    assert [r.status for r in reports] == ["written", "written"]
    outs = [r.output for r in reports]
    assert all(o is not None and "DOE" not in o.name for o in outs)
    datasets = []
    for out in outs:
        assert out is not None
        data = out.read_bytes()
        assert text_leaks(data, planted) == []
        ds = pydicom.dcmread(out)
        assert value_leaks(ds, planted) == []
        assert private_left(ds) == 0
        assert ds.pixel_array.shape == (24, 32)  # still an image that decodes
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert out.name == f"{ds.SOPInstanceUID}.dcm"
        datasets.append(ds)
    a, b = datasets
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID and a.PatientID == b.PatientID
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    shifts = {
        (_day(ds.StudyDate) - _day(pydicom.dcmread(src).StudyDate)).days for ds, src in zip(datasets, paths)
    }
    assert len(shifts) == 1 and -3652 <= shifts.pop() <= -365  # one patient, one offset


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def test_same_input_same_output_with_one_key_other_key_other_uids(
    tmp_path: Path, marker_files: tuple[list[Path], Planted]
) -> None:
    src = marker_files[0][0]
    one = deidentify_file(src, tmp_path / "a", DeidOptions(key=KEY))
    two = deidentify_file(src, tmp_path / "b", DeidOptions(key=KEY))
    other = deidentify_file(src, tmp_path / "c", DeidOptions(key=bytes(32)))
    assert one.output is not None and two.output is not None and other.output is not None
    assert one.output.name == two.output.name != other.output.name
    assert one.output.read_bytes() == two.output.read_bytes()


def test_allow_listed_private_survives_the_file(
    tmp_path: Path, marker_files: tuple[list[Path], Planted]
) -> None:
    paths, planted = marker_files
    options = DeidOptions(key=KEY, keep_private=parse_private_allow_list([KEEP_PRIVATE]))
    report = deidentify_file(paths[0], tmp_path, options)
    assert report.output is not None
    ds = pydicom.dcmread(report.output)
    assert ds[0x00190010].value == "MRK KEEP CREATOR"
    assert len(text_leaks(report.output.read_bytes(), planted)) == 3  # the kept (0019,xx05) at three depths
    assert "113111" in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]


def test_refused_file_is_not_written(tmp_path: Path, vendor_file: Callable[[str], Path]) -> None:
    report = deidentify_file(vendor_file("US1_UNCR.dcm"), tmp_path / "out", DeidOptions(key=KEY))
    assert report.status == "refused" and "fail closed" in report.reason
    assert not (tmp_path / "out").exists()
    assert report.line().startswith("REFUSED")


VENDOR_WRITTEN = [
    "OBXXXX1A.dcm",
    "OBXXXX1A_expb_2frame.dcm",
    "OBXXXX1A_rle.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "gdcm-US-ALOKA-16_big.dcm",
    "emri_small_jpeg_2k_lossless.dcm",  # MR, Burned In Annotation NO: header only, pixels kept compressed
    "eCT_Supplemental.dcm",
]


@pytest.mark.parametrize("name", VENDOR_WRITTEN)
def test_vendor_files_are_deidentified_and_read_back(
    tmp_path: Path, vendor_file: Callable[[str], Path], name: str
) -> None:
    src = vendor_file(name)
    before = pydicom.dcmread(src)
    report = deidentify_file(src, tmp_path, DeidOptions(key=KEY))
    assert report.status == "written", report.reason
    assert report.output is not None
    data = report.output.read_bytes()
    after = pydicom.dcmread(report.output)
    for keyword in (
        "PatientName",
        "PatientID",
        "AccessionNumber",
        "InstitutionName",
        "ReferringPhysicianName",
    ):
        value = str(before.get(keyword, "") or "").strip()
        if len(value) >= 4:
            assert value.encode() not in data, keyword
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert str(before[keyword].value).encode() not in data
        assert str(after[keyword].value).startswith("2.25.")
    assert after.PatientIdentityRemoved == "YES"
    assert private_left(after) == 0
    assert after.pixel_array.shape == before.pixel_array.shape


def test_cleaned_vendor_pixels_inside_regions_unchanged(
    tmp_path: Path, vendor_file: Callable[[str], Path]
) -> None:
    src = vendor_file("OBXXXX1A_rle_2frame.dcm")
    before = pydicom.dcmread(src).pixel_array
    report = deidentify_file(src, tmp_path, DeidOptions(key=KEY))
    assert report.output is not None and report.pixels is not None
    after = pydicom.dcmread(report.output)
    assert after.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    x0, y0, x1, y1 = report.pixels.rects[0]
    assert np.array_equal(after.pixel_array[:, y0 : y1 + 1, x0 : x1 + 1], before[:, y0 : y1 + 1, x0 : x1 + 1])


def test_folder_names_outputs_by_uid_and_skips_dicomdir_and_junk(
    tmp_path: Path, marker_files: tuple[list[Path], Planted]
) -> None:
    src = marker_files[0][0].parent
    (src / "DICOMDIR").write_bytes(b"\x00" * 132)
    (src / "notes.txt").write_text("DOE^JOHN")
    sub = src / "series2"
    sub.mkdir()
    shutil.copy(marker_files[0][0], sub / "copy.dcm")
    flat = {r.source.name: r.status for r in deidentify_paths(src, tmp_path / "o1", DeidOptions(key=KEY))}
    assert flat == {
        "DICOMDIR": "skipped",
        "DOE^JOHN_0.dcm": "written",
        "DOE^JOHN_1.dcm": "written",
        "notes.txt": "skipped",
    }
    deep = list(deidentify_paths(src, tmp_path / "o2", DeidOptions(key=KEY), recursive=True))
    written = sorted(r.output.name for r in deep if r.output is not None)
    assert len(written) == 3 and sum(n.endswith("-2.dcm") for n in written) == 1  # the copy: same instance


def test_single_file_to_exact_path_and_output_inside_input_refused(
    tmp_path: Path, marker_files: tuple[list[Path], Planted]
) -> None:
    src = marker_files[0][0]
    (report,) = deidentify_paths(src, tmp_path / "exact.dcm", DeidOptions(key=KEY))
    assert report.output == tmp_path / "exact.dcm" and report.output.is_file()
    with pytest.raises(DeidError, match="must not be the input or lie inside it"):
        list(deidentify_paths(src.parent, src.parent / "out", DeidOptions(key=KEY)))
    with pytest.raises(DeidError, match="no such file or folder"):
        list(deidentify_paths(tmp_path / "missing", tmp_path / "o", DeidOptions(key=KEY)))


def test_truncated_file_is_an_error_not_an_output(
    tmp_path: Path, marker_files: tuple[list[Path], Planted]
) -> None:
    src = marker_files[0][0]
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(src.read_bytes()[:400])
    report = deidentify_file(cut, tmp_path / "out", DeidOptions(key=KEY))
    assert report.status == "error"
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []
