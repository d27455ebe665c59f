"""Fixtures for the source tests: clips, stills and damaged files written into tmp_path, and DICOM
files (real ones from the installed packages, synthetic ones); built by ``tests.support``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.support.clips import ClipSpec, still_image, truncate, write_clip
from tests.support.dicom import installed_dicom, write_dicom


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


@pytest.fixture(scope="session")
def dicom_file() -> Callable[[str], Path]:
    """A real file by name from pydicom-data or pydicom's own test files; skip if neither has it."""
    return installed_dicom


@pytest.fixture
def dicom_writer(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, pixel_bytes: bytes | None, **kwargs: Any) -> Path:
        return write_dicom(tmp_path / name, pixel_bytes, **kwargs)

    return write


@pytest.fixture
def mixed_folder(tmp_path: Path, dicom_file: Callable[[str], Path]) -> Path:
    """A study folder: good files (one in a subfolder), garbage, a text file, a truncated file, a
    hidden one."""
    folder = tmp_path / "study"
    (folder / "sub").mkdir(parents=True)
    (folder / "a_good.dcm").write_bytes(dicom_file("US1_UNCR.dcm").read_bytes())
    (folder / "sub" / "c_cine.dcm").write_bytes(dicom_file("OBXXXX1A_2frame.dcm").read_bytes())
    (folder / "b_garbage.dcm").write_bytes(b"\x00\x01garbage" * 300)
    (folder / "notes.txt").write_text("operator notes\n")
    data = dicom_file("US1_UNCR.dcm").read_bytes()
    (folder / "d_truncated.dcm").write_bytes(data[: len(data) // 2])
    (folder / ".hidden").write_bytes(b"ignored")
    return folder
