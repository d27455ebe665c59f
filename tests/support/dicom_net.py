"""DICOM network tests: a Storage SCP source on a free loopback port, real clients (dcmtk's storescu
and echoscu, pynetdicom), and small images derived from a real pydicom-data chest CR (RG1_UNCR.dcm)
with new SOP Instance UIDs, written into the test's own folder.

Nothing here reaches beyond loopback; pydicom is never asked to fetch a file.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.association import Association

from edge.frames import Frame
from edge.sources import open_source
from edge.sources.dicom_scp import DicomScpSource
from tests.support.dicom import installed_dicom

CALLER = "CONSOLE"
AET = "EDGE"
CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
MR = "1.2.840.10008.5.1.4.1.1.4"
VERIFICATION = "1.2.840.10008.1.1"
_UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def require_dcmtk() -> tuple[str, str]:
    """The paths of storescu and echoscu; the test is skipped, naming dcmtk, when they are missing."""
    storescu, echoscu = shutil.which("storescu"), shutil.which("echoscu")
    if storescu is None or echoscu is None:
        pytest.skip("dcmtk's storescu/echoscu are not installed (scripts/setup.sh --test installs dcmtk)")
    return storescu, echoscu


@contextmanager
def scp_source(store: Path, callers: str = CALLER, **query: Any) -> Iterator[DicomScpSource]:
    """An open SCP on 127.0.0.1, a free port (``.port``), storing into ``store``; closed after."""
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    src = open_source(f"dicom+scp://127.0.0.1:0?aet={AET}&callers={callers}&store={store}{extra}")
    assert isinstance(src, DicomScpSource)
    src.open()
    try:
        yield src
    finally:
        src.close()


def read_frames(src: DicomScpSource, n: int, timeout: float = 10.0) -> list[Frame]:
    """Up to ``n`` frames, stopping at the first read that times out."""
    frames: list[Frame] = []
    while len(frames) < n:
        frame = src.read(timeout)
        if frame is None:
            break
        frames.append(frame)
    return frames


def stored_files(store: Path) -> list[str]:
    """Every name in the store folder (temporary files included: none may be left)."""
    return sorted(p.name for p in store.iterdir()) if store.exists() else []


# -- images --------------------------------------------------------------------------------------------------
@functools.cache
def _chest_header() -> Dataset:
    return pydicom.dcmread(installed_dicom("RG1_UNCR.dcm"), stop_before_pixels=True)


@functools.cache
def _chest_pixels(size: int) -> bytes:
    stored = pydicom.dcmread(installed_dicom("RG1_UNCR.dcm")).pixel_array
    return cv2.resize(stored, (size, size), interpolation=cv2.INTER_AREA).astype(np.uint16).tobytes()


def chest_cr() -> Dataset:
    """The real chest CR's header (15-bit MONOCHROME1, PA chest) from pydicom-data, a copy of its own."""
    return copy.deepcopy(_chest_header())


def renewed(ds: Dataset) -> Dataset:
    """``ds`` with a new SOP Instance UID (in the file meta too), as a console's next image."""
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    return ds


def small_cr(size: int = 64) -> Dataset:
    """The chest CR's pixels shrunk to ``size`` x ``size`` (still 16-bit stored values), new UID."""
    ds = chest_cr()
    ds.Rows, ds.Columns = size, size
    ds.PixelData = _chest_pixels(size)
    ds["PixelData"].VR = "OW"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return renewed(ds)


def write_small_crs(folder: Path, n: int, size: int = 64) -> list[Path]:
    """``n`` small CR files, each with its own SOP Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"cr_{i:04d}.dcm"
        small_cr(size).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def voi_lut_dx(size: int = 96) -> tuple[Dataset, np.ndarray]:
    """A 16-bit DX For Presentation (12 bits stored: the chest CR's values shifted down) with a VOI LUT
    Sequence (a square-root curve, 16-bit entries) and a window that must lose to it; returns the data
    set and its LUT."""
    ds = small_cr(size)
    stored = np.frombuffer(ds.PixelData, np.uint16) >> 3
    ds.PixelData = stored.astype(np.uint16).tobytes()
    ds.SOPClassUID = DX
    ds.file_meta.MediaStorageSOPClassUID = DX
    ds.Modality = "DX"
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    lut = np.rint(np.sqrt(np.arange(4096) / 4095) * 60000 + 1000).astype(np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", lut.tolist())  # LUT Data
    ds.VOILUTSequence = [item]
    ds.WindowCenter, ds.WindowWidth = 100, 10
    return ds, lut


# -- clients -------------------------------------------------------------------------------------------------
def associate(
    port: int, contexts: Sequence[str] = (CR,), calling: str = CALLER, called: str = AET
) -> Association:
    """A pynetdicom association (requestor) proposing ``contexts`` with the uncompressed syntaxes."""
    ae = AE(ae_title=calling)
    for uid in contexts:
        ae.add_requested_context(uid, _UNCOMPRESSED if uid != VERIFICATION else None)
    return ae.associate("127.0.0.1", port, ae_title=called)


def pynetdicom_store(
    port: int, items: Sequence[Dataset | Path], contexts: Sequence[str] = (CR,)
) -> list[int]:
    """Send ``items`` over one association; the status of each."""
    assoc = associate(port, contexts)
    assert assoc.is_established, "the SCP did not accept the association"
    try:
        return [int(assoc.send_c_store(item).Status) for item in items]
    finally:
        assoc.release()


def storescu(
    port: int, files: Sequence[Path], *, calling: str = CALLER, called: str = AET, debug: bool = False
) -> subprocess.CompletedProcess[str]:
    """dcmtk's storescu sending ``files`` over one association, going on past a failure (``-nh``)."""
    storescu_path, _ = require_dcmtk()
    level = "-d" if debug else "-v"
    args = [storescu_path, level, "-nh", "-aet", calling, "-aec", called, "127.0.0.1", str(port)]
    return subprocess.run([*args, *map(str, files)], capture_output=True, text=True, timeout=120, check=False)


def echoscu(port: int, *, calling: str = CALLER, called: str = AET) -> subprocess.CompletedProcess[str]:
    _, echoscu_path = require_dcmtk()
    args = [echoscu_path, "-v", "-aet", calling, "-aec", called, "127.0.0.1", str(port)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def dimse_statuses(output: str) -> list[int]:
    """The C-STORE response statuses in storescu's debug output (``DIMSE Status : 0xc000: ...``)."""
    return [int(m, 16) for m in re.findall(r"DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})", output)]
