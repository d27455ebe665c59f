"""DICOM files for the tests: real vendor files from the installed pydicom-data (``data_store``) and
pydicom packages, and minimal synthetic files written with pydicom.

Nothing here reads the network; pydicom is never asked to fetch a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from edge.frames import Frame
from edge.sources import open_source
from edge.sources.dicom import DicomSource
from tests.support.sources import read_all


def installed_dicom_folders() -> list[Path]:
    """pydicom-data's files (when installed), then pydicom's own test files."""
    folders = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import data_store
    except ImportError:
        return folders
    return [Path(data_store.__file__).parent / "data", *folders]


def installed_dicom(name: str) -> Path:
    """A real file by name from pydicom-data or pydicom's own test files; the test is skipped if
    neither has it."""
    for folder in installed_dicom_folders():
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"{name} is not installed locally (the pydicom-data package)")


SOP_CLASSES = {
    "US": "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "OT": "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
}


def write_dicom(
    path: Path,
    pixel_bytes: bytes | None,
    *,
    rows: int,
    cols: int,
    photometric: str,
    modality: str = "US",
    samples: int = 1,
    bits: int = 8,
    bits_stored: int | None = None,
    signed: bool = False,
    frames: int | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    **attributes: Any,
) -> Path:
    """A minimal but valid DICOM file (Part 10, with preamble and file meta) holding ``pixel_bytes``.

    Patient attributes are always set so tests can check that none of them leaks into Frame.meta.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASSES.get(modality, SOP_CLASSES["OT"])
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "PID-12345"
    ds.PatientBirthDate = "19700101"
    ds.StudyDate = "20240102"
    ds.Modality = modality
    ds.Manufacturer = "Test Devices"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = samples
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    if frames is not None:
        ds.NumberOfFrames = frames
    for key, value in attributes.items():
        setattr(ds, key, value)
    if pixel_bytes is not None:
        ds.PixelData = pixel_bytes
        ds["PixelData"].VR = "OB" if bits <= 8 else "OW"
    ds.save_as(path, enforce_file_format=True)
    return path


def opened(url: str) -> DicomSource:
    """An opened ``dicom://`` source."""
    src = open_source(url)
    assert isinstance(src, DicomSource)
    src.open()
    return src


def frames_of(path: Path, query: str = "realtime=0", limit: int = 1000) -> list[Frame]:
    """Every frame ``dicom://path?query`` gives (at most ``limit``), the source closed after."""
    src = opened(f"dicom://{path}?{query}")
    try:
        return read_all(src, limit)
    finally:
        src.close()
