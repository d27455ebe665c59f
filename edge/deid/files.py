"""De-identify DICOM files: header (``header.py``), pixels (``pixels.py``), file meta, and the write.

Output files are named by their new SOP Instance UID (``<uid>.dcm``), because input file and folder
names often carry the patient's name. A refused file (pixels that cannot be cleaned) and a DICOMDIR
(a directory of patient names) are never written.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from edge import __version__
from edge.atomic_file import atomic_write
from edge.deid.errors import DeidError
from edge.deid.header import DeidOptions, HeaderReport, deidentify_header, mark_deidentified
from edge.deid.keys import remap_uid
from edge.deid.pixels import PixelOutcome, clean_pixels
from edge.deid.table import ProfileTable

log = logging.getLogger(__name__)

Status = Literal["written", "refused", "skipped", "error"]


@dataclass
class FileReport:
    """The fate of one input file."""

    source: Path
    status: Status
    reason: str = ""
    output: Path | None = None
    header: HeaderReport | None = None
    pixels: PixelOutcome | None = None

    def line(self) -> str:
        """One human line: status, input, and what was done or why not."""
        if self.status != "written" or self.header is None:
            return f"{self.status.upper():8s} {self.source}: {self.reason}"
        c = self.header.counts
        parts = [
            f"removed {c['removed']}",
            f"emptied {c['emptied']}",
            f"replaced {c['replaced']}",
            f"uids {c['uids_remapped']}",
            f"dates shifted {c['dates_shifted']}"
            + (f" ({self.header.shift_days:+d} d)" if c["dates_shifted"] else ""),
            f"dates removed {c['dates_removed']}",
            f"private removed {c['private_removed']}",
        ]
        if c["private_kept"]:
            parts.append(f"private kept {c['private_kept']}")
        if self.pixels is not None and self.pixels.action != "none":
            parts.append(f"pixels {self.pixels.action}: {self.pixels.reason}")
        return f"{'WRITTEN':8s} {self.source} -> {self.output}: " + ", ".join(parts)


def deidentify_dataset(
    ds: Dataset,
    options: DeidOptions,
    *,
    probe_rects: Mapping[str, Sequence[Sequence[int]]] | None = None,
    table: ProfileTable | None = None,
) -> tuple[HeaderReport | None, PixelOutcome]:
    """De-identify ``ds`` in place: pixels first (they need the header's Modality and model), then the
    header, then a new file meta. A refused outcome leaves ``ds`` half-done: do not write it."""
    pixels = clean_pixels(ds, probe_rects)
    if pixels.action == "refused":
        return None, pixels
    old_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    report = deidentify_header(ds, options, table=table)
    mark_deidentified(ds, options, pixels_cleaned=pixels.action == "cleaned")
    rewritten = pixels.action == "cleaned"
    ds.file_meta = _new_meta(ds, old_meta, options.key, rewritten=rewritten)
    ds.preamble = b"\x00" * 128  # the original preamble may be a TIFF header with anything in it
    return report, pixels


def _new_meta(ds: Dataset, old: FileMetaDataset, key: bytes, *, rewritten: bool) -> FileMetaDataset:
    meta = FileMetaDataset()
    sop_class = ds.get("SOPClassUID") or old.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    sop = ds.get("SOPInstanceUID")
    if not sop and old.get("MediaStorageSOPInstanceUID"):
        sop = remap_uid(key, str(old.MediaStorageSOPInstanceUID))
    if sop:
        meta.MediaStorageSOPInstanceUID = sop
    tsyntax = old.get("TransferSyntaxUID")
    if rewritten or not tsyntax:
        implicit = not rewritten and ds.original_encoding[0] is True
        tsyntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    meta.TransferSyntaxUID = tsyntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"SCANNER_EDGE_{__version__}"[:16]
    return meta


def deidentify_file(
    source: Path,
    out: Path,
    options: DeidOptions,
    *,
    probe_rects: Mapping[str, Sequence[Sequence[int]]] | None = None,
    out_is_file: bool = False,
) -> FileReport:
    """De-identify one file into ``out`` (a folder, or the exact output path with ``out_is_file``)."""
    if source.name == "DICOMDIR":
        return FileReport(source, "skipped", "a DICOMDIR lists patients by name: not copied")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(source)
    except InvalidDicomError:
        return FileReport(source, "skipped", "not a DICOM file (no 'DICM' preamble)")
    except Exception as exc:
        return FileReport(source, "error", f"cannot parse ({type(exc).__name__}: {exc})")
    if any("End of file" in str(w.message) for w in caught) or "SOPInstanceUID" not in ds:
        return FileReport(
            source, "error", "truncated or malformed: no complete dataset with a SOP Instance UID"
        )
    try:
        report, pixels = deidentify_dataset(ds, options, probe_rects=probe_rects)
    except DeidError as exc:
        return FileReport(source, "error", str(exc))
    if report is None:
        return FileReport(source, "refused", f"not written (fail closed): {pixels.reason}", pixels=pixels)
    target = out if out_is_file else _free_name(out, str(ds.SOPInstanceUID))
    try:
        _write(ds, target)
        pydicom.dcmread(target, stop_before_pixels=True)  # what we wrote must read back
    except Exception as exc:
        return FileReport(source, "error", f"cannot write {target} ({type(exc).__name__}: {exc})")
    return FileReport(source, "written", output=target, header=report, pixels=pixels)


def _free_name(folder: Path, uid: str) -> Path:
    """``folder/<uid>.dcm``, or ``<uid>-2.dcm``... when an input repeats an instance (another encoding)."""
    target, n = folder / f"{uid}.dcm", 1
    while target.exists():
        n += 1
        target = folder / f"{uid}-{n}.dcm"
    return target


def _write(ds: Dataset, target: Path) -> None:
    """Written whole or not at all, so a crash never leaves half a file for an uploader."""
    atomic_write(target, lambda fh: ds.save_as(fh, enforce_file_format=True))


def input_files(path: Path, *, recursive: bool) -> Iterator[Path]:
    """``path`` itself, or the files of folder ``path`` (and its subfolders with ``recursive``), sorted."""
    if path.is_file():
        yield path
        return
    if not path.is_dir():
        raise DeidError(f"{path}: no such file or folder")
    pattern = path.rglob("*") if recursive else path.glob("*")
    files = sorted((p for p in pattern if p.is_file() and not p.name.startswith(".")), key=lambda p: str(p))
    yield from files


def deidentify_paths(
    source: Path,
    out: Path,
    options: DeidOptions,
    *,
    recursive: bool = False,
    probe_rects: Mapping[str, Sequence[Sequence[int]]] | None = None,
) -> Iterator[FileReport]:
    """De-identify a file or a folder into ``out``; one report per input file, as each is done.

    A single input file with an ``out`` ending in ``.dcm`` is written to exactly that path; otherwise
    ``out`` is a folder and each output is named by its new SOP Instance UID.
    """
    out_is_file = source.is_file() and out.suffix.lower() == ".dcm"
    if out.resolve() == source.resolve() or (
        source.is_dir() and out.resolve().is_relative_to(source.resolve())
    ):
        raise DeidError(f"{out}: the output must not be the input or lie inside it")
    for path in input_files(source, recursive=recursive):
        yield deidentify_file(path, out, options, probe_rects=probe_rects, out_is_file=out_is_file)
