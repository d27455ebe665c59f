"""Fixtures for the source tests: clips, stills and damaged files written into tmp_path, and the real
DICOM files shipped in the installed pydicom-data (``data_store``) and pydicom packages.

Nothing here reads /work/shared, the network, a camera or a GPU, and pydicom is never asked to fetch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CLIP_FRAMES = 20
CLIP_FPS = 25.0
CLIP_SIZE = (64, 48)  # width, height


def frame_level(i: int) -> int:
    """The gray level of clip frame i, so tests can check order after lossy coding."""
    return (40 + 9 * i) % 256


def write_clip(
    path: Path,
    n: int = CLIP_FRAMES,
    fps: float = CLIP_FPS,
    size: tuple[int, int] = CLIP_SIZE,
    fourcc: str = "mp4v",
) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), frame_level(i), np.uint8))
    writer.release()
    return path


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def still_image() -> np.ndarray:
    """A BGR test card: blue, green, red and white quadrants."""
    img = np.zeros((40, 60, 3), np.uint8)
    img[:20, :30] = (255, 0, 0)
    img[:20, 30:] = (0, 255, 0)
    img[20:, :30] = (0, 0, 255)
    img[20:, 30:] = (255, 255, 255)
    return img


@dataclass(frozen=True)
class ClipSpec:
    """What the clip fixtures hold, for the tests to compare against."""

    frames: int = CLIP_FRAMES
    fps: float = CLIP_FPS
    width: int = CLIP_SIZE[0]
    height: int = CLIP_SIZE[1]

    @staticmethod
    def level(i: int) -> int:
        return frame_level(i)


@pytest.fixture
def clip_spec() -> ClipSpec:
    return ClipSpec()


@pytest.fixture
def card() -> np.ndarray:
    """The BGR test card the still fixtures hold."""
    return still_image()


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "clip.mp4", **kwargs: object) -> Path:
        return write_clip(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def mp4_clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4")


@pytest.fixture
def avi_clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.avi", fourcc="MJPG")


@pytest.fixture
def truncated_mp4(mp4_clip: Path) -> Path:
    """The first 30% of a real mp4: the index (moov atom) is missing, nothing can be decoded."""
    return truncate(mp4_clip, mp4_clip.with_name("truncated.mp4"), 0.3)


@pytest.fixture
def truncated_avi(avi_clip: Path) -> Path:
    """The first 75% of a real MJPG avi (past its header): the first frames decode, then the data stops."""
    return truncate(avi_clip, avi_clip.with_name("half.avi"), 0.75)


@pytest.fixture
def garbage_mp4(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return path


@pytest.fixture
def empty_avi(tmp_path: Path) -> Path:
    """A valid avi container with zero frames."""
    return write_clip(tmp_path / "empty.avi", n=0, fourcc="MJPG")


@pytest.fixture
def still_png(tmp_path: Path) -> Path:
    path = tmp_path / "card.png"
    assert cv2.imwrite(str(path), still_image())
    return path


# -- DICOM files from the installed packages ------------------------------------------------------------
@pytest.fixture(scope="session")
def data_store_dir() -> Path:
    data_store = pytest.importorskip("data_store", reason="pydicom-data is not installed")
    return Path(data_store.__file__).parent / "data"


@pytest.fixture(scope="session")
def pydicom_files() -> Path:
    return Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture(scope="session")
def dicom_file(data_store_dir: Path, pydicom_files: Path) -> Callable[[str], Path]:
    """A real file by name from data_store or pydicom's bundled test files; skip if neither has it."""

    def find(name: str) -> Path:
        for folder in (data_store_dir, pydicom_files):
            if (folder / name).is_file():
                return folder / name
        pytest.skip(f"{name} is not installed locally (the pydicom-data package)")

    return find


# -- synthetic DICOM ----------------------------------------------------------------------------------------
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


@pytest.fixture
def dicom_writer(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, pixel_bytes: bytes | None, **kwargs: Any) -> Path:
        return write_dicom(tmp_path / name, pixel_bytes, **kwargs)

    return write
