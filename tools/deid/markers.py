"""Synthetic DICOM files that plant a unique marker in every attribute of PS3.15 Table E.1-1, in private
attributes, and in repeating groups, at the top level and nested two sequences deep; and the checks that
find any marker left in an output. Used by ``tests/unit/deid`` and ``tools/deid/compare.py``.

Text values carry ``MRK<n>`` markers (searched for in the output bytes); UIDs carry a 12-digit tag
``98765<n>`` (searched for too); dates, ages and numbers, which cannot carry text, are checked on the
parsed output: no (tag, original value) pair may remain anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from edge.deid.table import load_table

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
ROWS, COLS = 24, 32
REGION = (6, 4, 25, 19)  # x0, y0, x1, y1 inclusive: the ultrasound region of every synthetic file
FIRST_DATE = date(2020, 1, 1)  # planted dates lie within 300 days of this: a >= 365 day shift leaves them
KEEP_PRIVATE = "0019,05,MRK KEEP CREATOR"  # the allow-list entry matching the planted (0019,1005)
NON_TABLE_SEQUENCES = (0x00082218, 0x00089215)  # Anatomic Region Sequence, Derivation Code Sequence
_TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}
_SKIP = {0x00080016, 0x00080018, 0x00100020, 0x0020000D, 0x0020000E, 0x00200052}  # set per file/study


@dataclass
class Planted:
    """Everything planted in a set of files, to check outputs against."""

    texts: set[str] = field(default_factory=set)  # searched in the output bytes
    values: set[tuple[int, str]] = field(default_factory=set)  # (tag, value) not to be found parsed
    uids: dict[str, str] = field(default_factory=dict)  # role -> original UID (study, sop:0, ...)
    count: int = 0
    _n: int = 0

    def next(self) -> int:
        self._n += 1
        return self._n

    def text(self, prefix: str = "") -> str:
        marker = f"MRK{self.next():05d}"
        self.texts.add(marker)
        self.count += 1
        return prefix + marker

    def uid(self) -> str:
        digits = f"98765{self.next():07d}"
        self.texts.add(digits)
        self.count += 1
        return f"1.2.826.0.1.3680043.10.99.{digits}"


def _vr(tag: int) -> str:
    return dictionary_VR(tag).split(" or ")[0]


def _value(tag: int, vr: str, p: Planted) -> object:
    n = p._n + 1
    if vr in _TEXT_VRS:
        text = p.text("DOE^" if vr == "PN" else "http://example.org/" if vr == "UR" else "")
        return text
    if vr == "UI":
        return p.uid()
    if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
        return p.text().encode("ascii")
    p.next()
    p.count += 1
    if vr == "DA":
        v: object = (FIRST_DATE + timedelta(days=n % 300)).strftime("%Y%m%d")
    elif vr == "DT":
        v = (FIRST_DATE + timedelta(days=n % 300)).strftime("%Y%m%d") + "101500"
    elif vr == "TM":
        return "101500"  # times carry nothing alone; the Modified Dates option keeps them
    elif vr == "AS":
        v = f"{n % 1000:03d}Y"
    elif vr in ("DS", "IS"):
        v = str(70000 + n)
    elif vr in ("US", "SS", "UL", "SL"):
        v = 4000 + n
    elif vr in ("FL", "FD"):
        v = 4000.5 + n
    else:
        raise ValueError(f"no marker value for VR {vr}")
    p.values.add((tag, str(v)))
    return v


def _light_item(p: Planted, depth: int) -> Dataset:
    """A sequence item: a name, a referenced UID, a private marker; one more level below it."""
    item = Dataset()
    item.PatientName = p.text("DOE^")
    item.ReferencedSOPInstanceUID = p.uid()
    item.add_new(0x00110010, "LO", p.text("CREATOR "))
    item.add_new(0x00111001, "LO", p.text())
    if depth < 2:
        item.add_new(NON_TABLE_SEQUENCES[0], "SQ", Sequence([_light_item(p, depth + 1)]))
    return item


def fill(ds: Dataset, p: Planted, depth: int) -> None:
    """Plant a marker in every attribute of the table (and private ones); nest two levels of full copies."""
    table = load_table()
    for tag in sorted(table.exact):
        if tag >> 16 in (0x0000, 0x0002) or (depth == 0 and tag in _SKIP):  # command set, file meta
            continue
        vr = _vr(tag)
        if vr == "SQ":
            ds.add_new(tag, "SQ", Sequence([_light_item(p, depth + 1)]))
        else:
            ds.add_new(tag, vr, _value(tag, vr, p))
    ds.add_new(0x00090010, "LO", p.text("CREATOR "))
    ds.add_new(0x00091001, "LO", p.text())
    ds.add_new(0x00091002, "UN", p.text().encode("ascii"))
    ds.add_new(0x00091003, "SQ", Sequence([_light_item(p, 2)]))
    ds.add_new(0x00190010, "LO", "MRK KEEP CREATOR")
    ds.add_new(0x00191005, "LO", p.text())
    if depth < 2:
        inner = Dataset()
        fill(inner, p, depth + 1)
        ds.add_new(NON_TABLE_SEQUENCES[depth], "SQ", Sequence([inner]))


def marker_study(n_files: int = 2, *, patient_id: str | None = None) -> tuple[list[Dataset], Planted]:
    """``n_files`` ultrasound images of one study, markers everywhere; file k>0 references file 0."""
    p = Planted()
    patient = patient_id or p.text("PID")
    p.uids["study"], p.uids["series"], p.uids["frame"] = p.uid(), p.uid(), p.uid()
    out = []
    for k in range(n_files):
        ds = Dataset()
        fill(ds, p, 0)
        p.uids[f"sop:{k}"] = sop = p.uid()
        ds.SOPClassUID = US_IMAGE_STORAGE
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = p.uids["study"]
        ds.SeriesInstanceUID = p.uids["series"]
        ds.FrameOfReferenceUID = p.uids["frame"]
        ds.PatientID = patient
        if k > 0:
            ref = Dataset()
            ref.ReferencedSOPClassUID = US_IMAGE_STORAGE
            ref.ReferencedSOPInstanceUID = p.uids["sop:0"]
            ds.ReferencedImageSequence = Sequence([ref])
        ds.add_new(0x50000005, "US", 1)
        ds.add_new(0x50003000, "OB", p.text().encode("ascii"))
        ds.add_new(0x60000010, "US", ROWS)
        ds.add_new(0x60000011, "US", COLS)
        ds.add_new(0x60003000, "OB", p.text().encode("ascii"))
        ds.add_new(0x60004000, "LT", p.text())
        _image(ds)
        out.append(ds)
    return out, p


def _image(ds: Dataset) -> None:
    ds.Modality = "US"
    ds.BurnedInAnnotation = "YES"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ROWS, COLS
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = synthetic_image().tobytes()
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = REGION[0], REGION[1]
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = REGION[2], REGION[3]
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    ds.SequenceOfUltrasoundRegions = Sequence([region])


def synthetic_image() -> np.ndarray:
    """Rows x cols, every pixel non-zero, so a blacked-out pixel is unmistakable."""
    return (np.arange(ROWS * COLS, dtype=np.uint16) % 250 + 1).astype(np.uint8).reshape(ROWS, COLS)


def save(ds: Dataset, path: Path) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# -- checks --------------------------------------------------------------------------------------------------
def walk(ds: Dataset) -> Iterator[tuple[int, object]]:
    """(tag, value) of every element at every depth, file meta included."""
    meta = getattr(ds, "file_meta", None)
    for source in (meta, ds) if meta is not None else (ds,):
        for elem in source:
            if elem.VR == "SQ":
                for item in elem.value or []:
                    yield from walk(item)
            else:
                yield int(elem.tag), elem.value


def text_leaks(data: bytes, planted: Planted) -> list[str]:
    """Markers (and UID digit tags) found in the raw bytes of an output file."""
    return sorted(m for m in planted.texts if m.encode("ascii") in data)


def value_leaks(ds: Dataset, planted: Planted) -> list[tuple[int, str]]:
    """Planted (tag, value) pairs of dates, ages and numbers still present anywhere in ``ds``."""
    found = []
    for tag, value in walk(ds):
        values = (
            value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        )
        for v in values:  # type: ignore[attr-defined]
            if (tag, str(v)) in planted.values:
                found.append((tag, str(v)))
    return found


def private_left(ds: Dataset) -> int:
    """Private (odd group) elements at every depth."""
    return sum(1 for tag, _ in walk(ds) if (tag >> 16) % 2 == 1)
