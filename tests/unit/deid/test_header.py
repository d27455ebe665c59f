from __future__ import annotations

from datetime import date

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from edge.deid.errors import DeidError
from edge.deid.header import (
    DeidOptions,
    PrivateTag,
    deidentify_header,
    mark_deidentified,
    parse_private_allow_list,
    patient_key,
)
from edge.deid.keys import date_shift_days
from tools.deid.markers import KEEP_PRIVATE, marker_study, value_leaks, walk

KEY = bytes(range(32))


def _d(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _texts(ds: Dataset) -> str:
    return " ".join(repr(v) for _, v in walk(ds))


def test_every_marker_is_gone_at_every_depth() -> None:
    (ds,), planted = marker_study(1)
    deidentify_header(ds, DeidOptions(key=KEY))
    text = _texts(ds)
    assert [m for m in planted.texts if m in text] == []
    assert value_leaks(ds, planted) == []
    assert not any((tag >> 16) % 2 for tag, _ in walk(ds))  # no private attribute anywhere


def test_basic_actions() -> None:
    (ds,), _ = marker_study(1)
    original_pid = ds.PatientID
    report = deidentify_header(ds, DeidOptions(key=KEY))
    assert ds.PatientName == ""  # Z
    assert ds.PatientBirthDate == ""  # Z, no date option
    assert "PatientAge" not in ds  # X
    assert ds.PatientID.startswith("PAT-") and original_pid not in ds.PatientID  # Z/D: keyed pseudonym
    assert ds.InstitutionName == ""  # X/Z/D -> Z
    assert "ProtocolName" not in ds  # X/D -> X
    assert len(ds.ContentSequence) == 0  # D on a sequence: emptied
    assert ds.StudyInstanceUID.startswith("2.25.")
    assert report.counts["removed"] > 300 and report.counts["uids_remapped"] > 50


def test_nested_two_levels_deep() -> None:
    (ds,), _ = marker_study(1)
    deidentify_header(ds, DeidOptions(key=KEY))
    level1 = ds.AnatomicRegionSequence[0]
    level2 = level1.DerivationCodeSequence[0]
    for item in (level1, level2):
        assert item.PatientName == ""
        assert "PatientAge" not in item
        assert item.StudyInstanceUID.startswith("2.25.")


def test_dates_shift_by_one_per_patient_offset_keeping_intervals() -> None:
    (ds,), _ = marker_study(1)
    before = {k: ds[k].value for k in ("StudyDate", "AcquisitionDate", "SeriesDate", "ContentDate")}
    expected_days = date_shift_days(KEY, patient_key(ds))
    report = deidentify_header(ds, DeidOptions(key=KEY))
    assert report.shift_days == expected_days
    for k, v in before.items():
        assert (_d(ds[k].value) - _d(v)).days == expected_days, k
    assert ds.AcquisitionDateTime[8:] == "101500"  # DT: time of day kept
    assert ds.StudyTime == "101500"  # TM with the Modified Dates option: whole days leave it


def test_dates_removed_mode() -> None:
    (ds,), _ = marker_study(1)
    options = DeidOptions(key=KEY, dates="remove")
    report = deidentify_header(ds, options)
    mark_deidentified(ds, options, pixels_cleaned=False)
    assert report.shift_days is None and report.counts["dates_shifted"] == 0
    assert ds.StudyDate == ""  # Z
    assert "SeriesDate" not in ds  # X/D -> X
    real = [v for tag, v in walk(ds) if v and isinstance(v, str) and v[:3] in ("201", "202")]
    assert real == []
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
def test_a_date_that_cannot_be_shifted_gets_the_basic_action() -> None:
    ds = Dataset()
    ds.StudyDate = "2019"  # Z under Basic
    ds.SeriesDate = "201903"  # X/D -> X
    report = deidentify_header(ds, DeidOptions(key=KEY))
    assert ds.StudyDate == "" and "SeriesDate" not in ds
    assert any("Study Date" in n for n in report.notes)


def test_unlisted_dates_are_shifted_too() -> None:
    ds = Dataset()
    ds.PatientID = "P1"
    ds.add_new(0x00181202, "DA", "20200102")  # Date of Last Calibration: not in Table E.1-1
    deidentify_header(ds, DeidOptions(key=KEY))
    assert (_d(ds[0x00181202].value) - date(2020, 1, 2)).days == date_shift_days(KEY, "id:P1")


def test_uids_are_consistent_references_intact_and_standard_uids_kept() -> None:
    a, b = marker_study(2)[0]
    sop_a = a.SOPInstanceUID
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == sop_a
    b.ReferencedImageSequence[0].ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    for ds in (a, b):
        deidentify_header(ds, DeidOptions(key=KEY))
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    ref = b.ReferencedImageSequence[0]  # X/Z/U*: kept, UIDs inside remapped like the file's own
    assert ref.ReferencedSOPInstanceUID == a.SOPInstanceUID != sop_a
    assert ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1"


def test_private_allow_list_keeps_only_the_listed_element() -> None:
    (ds,), planted = marker_study(1)
    kept_values = {v for tag, v in walk(ds) if tag == 0x00191005}  # planted at each of the three depths
    assert len(kept_values) == 3
    report = deidentify_header(
        ds, DeidOptions(key=KEY, keep_private=parse_private_allow_list([KEEP_PRIVATE]))
    )
    assert ds[0x00191005].value in kept_values and ds[0x00190010].value == "MRK KEEP CREATOR"
    assert 0x00091001 not in ds and 0x00090010 not in ds
    assert report.counts["private_kept"] >= 2 and report.counts["private_removed"] > 0
    left = {m for m in planted.texts if m in _texts(ds)}
    assert left == kept_values  # the allow-listed ones, and only they, at every depth


def test_orphaned_overlay_group_goes_whole() -> None:
    (ds,), _ = marker_study(1)
    deidentify_header(ds, DeidOptions(key=KEY))
    assert not any(0x6000 <= tag >> 16 <= 0x60FF for tag, _ in walk(ds))
    assert not any(0x5000 <= tag >> 16 <= 0x50FF for tag, _ in walk(ds))


def test_marks_say_what_was_applied() -> None:
    ds = Dataset()
    options = DeidOptions(key=KEY, keep_private=frozenset({PrivateTag(0x0019, "X", 5)}))
    mark_deidentified(ds, options, pixels_cleaned=True)
    assert ds.PatientIdentityRemoved == "YES"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == [
        "113100",
        "113101",
        "113107",
        "113111",
    ]
    assert all(i.CodingSchemeDesignator == "DCM" for i in ds.DeidentificationMethodCodeSequence)
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert all(len(v) <= 64 for v in ds.DeidentificationMethod)


def test_patient_key_falls_back_to_name_then_study() -> None:
    ds = Dataset()
    ds.StudyInstanceUID = "1.2.3"
    assert patient_key(ds) == "study:1.2.3"
    ds.PatientName = "DOE^J"
    assert patient_key(ds).startswith("name:DOE^J")
    ds.PatientID = "42"
    assert patient_key(ds) == "id:42"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("0019,05", "expected GGGG,EE,CREATOR"),
        ("0018,05,ACME", "not a private group"),
        ("0019,05, ", "expected GGGG,EE,CREATOR|creator is empty"),
    ],
)
def test_bad_allow_list_entries_are_named(entry: str, message: str) -> None:
    with pytest.raises(DeidError, match=message):
        PrivateTag.parse(entry)


def test_options_are_checked() -> None:
    with pytest.raises(DeidError, match="at least 16 bytes"):
        DeidOptions(key=b"short")
    with pytest.raises(DeidError, match="'shift' or 'remove'"):
        DeidOptions(key=KEY, dates="blur")  # type: ignore[arg-type]


def test_sequence_items_without_anything_listed_survive() -> None:
    ds = Dataset()
    region = Dataset()
    region.RegionLocationMinX0 = 1
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    deidentify_header(ds, DeidOptions(key=KEY))
    assert ds.SequenceOfUltrasoundRegions[0].RegionLocationMinX0 == 1


def test_group_lengths_go_as_they_would_be_wrong() -> None:
    ds = Dataset()
    ds.add_new(0x00080000, "UL", 100)
    ds.Modality = "US"
    deidentify_header(ds, DeidOptions(key=KEY))
    assert 0x00080000 not in ds and ds.Modality == "US"
