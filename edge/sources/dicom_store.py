"""Received DICOM objects, kept durably and once: the store behind the Storage SCP (``dicom+scp://``),
and the check that an object is an image the runtime can show (shared with ``dicom+watch://``).

An object is written to a temporary file in the store's folder, fsynced, checked (header, pixel data
length, decoder, first and last frame decoded and rendered), renamed to ``<SOP Instance UID>.dcm``
and the folder fsynced: only then may the SCP answer success, and a crash at any point leaves
either the whole object or nothing under its final name (temporary files are removed at open).
The same SOP Instance UID stored again is a duplicate: answered as a success, never shown twice.

What cannot be taken is a :class:`StoreRefused` carrying the DICOM status the SCP answers with
(PS3.4 B.2.3 and PS3.7 C), see ``STATUS_MEANINGS``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom.pixels import iter_pixels

from edge.errors import CorruptInputError, SourceError
from edge.sources.dicom_file import DicomImage, NoPixelDataError, probe

log = logging.getLogger(__name__)

SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110  # an unexpected failure of ours (a bug, a store that cannot be written)
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700  # the disk is full, or would fall below the free space kept
TOO_LARGE = 0xA701  # out of resources: larger than the largest object taken
DOES_NOT_MATCH = 0xA900  # the data set's SOP Class/Instance UID differs from the request's
CANNOT_UNDERSTAND = 0xC000  # truncated or malformed: the header or the pixel data cannot be read
NO_PIXEL_DATA = 0xC001  # cannot understand: not an image (no Pixel Data)
NOT_DISPLAYABLE = 0xC002  # cannot understand: an image the runtime cannot display
STATUS_MEANINGS = {
    SUCCESS: "stored (or already stored: a repeat of the same SOP Instance UID)",
    PROCESSING_FAILURE: "processing failure: the store could not be written (see the device's log)",
    SOP_CLASS_NOT_SUPPORTED: "refused: SOP class not supported",
    OUT_OF_RESOURCES: "refused: out of resources (disk full or below the free space kept)",
    TOO_LARGE: "refused: out of resources (object larger than max_object_mb)",
    DOES_NOT_MATCH: "error: data set does not match the SOP class or instance of the request",
    CANNOT_UNDERSTAND: "error: cannot understand (truncated or malformed data set)",
    NO_PIXEL_DATA: "error: cannot understand (no Pixel Data: not an image)",
    NOT_DISPLAYABLE: "error: cannot understand (pixel format or encoding the runtime cannot display)",
}
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_PART = ".part"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
First = tuple[np.ndarray, "np.ndarray | None"]  # frame 0 rendered: (BGR display image, raw values)


class StoreRefused(Exception):
    """An object the store will not take, with the DICOM status that says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Arrival:
    """One checked image waiting to be shown: where it is, its first frame if still held, when it came."""

    image: DicomImage
    first: First | None
    uid: str
    t_arrived_ns: int = 0  # monotonic; set when it counts as arrived (the SCP: as it answers success)
    wall_time: float = 0.0


def check_image(path: Path) -> tuple[DicomImage, First]:
    """``path`` probed and its first (and last) frame decoded and rendered; SourceError if it cannot be."""
    try:
        image = probe(path)
    except SourceError:
        raise
    except Exception as exc:  # an attribute pydicom cannot make sense of (a LUT, a window): not understood
        raise CorruptInputError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    last = image.n_frames - 1
    first: First | None = None
    for index in sorted({0, last}):
        try:
            (arr,) = iter_pixels(image.decode_from, indices=[index], **image.decode_kwargs)
            rendered = image.render(arr)
        except SourceError:
            raise
        except Exception as exc:  # any decoder failure: the data set cannot be understood
            raise CorruptInputError(
                f"{path}: frame {index} cannot be decoded ({type(exc).__name__}: {exc})"
            ) from exc
        if index == 0:
            first = rendered
    assert first is not None
    return image, first


def status_of(exc: SourceError) -> int:
    if isinstance(exc, NoPixelDataError):
        return NO_PIXEL_DATA
    if isinstance(exc, CorruptInputError):
        return CANNOT_UNDERSTAND
    return NOT_DISPLAYABLE


def moved(image: DicomImage, path: Path) -> DicomImage:
    """``image`` as found at ``path`` after a rename (decoding reads the file by its path)."""
    decode_from = path if isinstance(image.decode_from, Path) else image.decode_from
    return replace(image, path=path, decode_from=decode_from, meta={**image.meta, "file": str(path)})


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DicomStore:
    """A folder of received objects, ``<SOP Instance UID>.dcm`` each, written whole or not at all."""

    def __init__(self, folder: Path, max_object_bytes: int, min_free_bytes: int) -> None:
        self.folder = folder
        self.max_object_bytes = max_object_bytes
        self.min_free_bytes = min_free_bytes
        self._lock = threading.Condition()
        self._busy: set[str] = set()  # UIDs being stored now: a second copy waits for the first

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for leftover in self.folder.glob(f".*{_PART}"):  # a crash mid-write: never a final name
                log.warning("%s: removing a partly received object left by an earlier run", leftover)
                leftover.unlink(missing_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".probe.", suffix=_PART):
                pass  # the folder takes a new file
        except OSError as exc:
            raise SourceError(
                f"{self.folder}: the DICOM store cannot be written: {exc.strerror or exc}"
            ) from exc

    def path_of(self, uid: str) -> Path:
        return self.folder / f"{uid}.dcm"

    def put(self, uid: str, size: int, write: Callable[[BinaryIO], object]) -> Arrival | None:
        """Store the object ``write`` writes (``size`` bytes) as ``uid``; None when it is already
        stored (a repeat). Raises StoreRefused with the status to answer."""
        if not _UID.match(uid) or len(uid) > 64:
            raise StoreRefused(CANNOT_UNDERSTAND, f"invalid SOP Instance UID {uid[:80]!r}")
        if size > self.max_object_bytes:
            raise StoreRefused(
                TOO_LARGE,
                f"object of {size / 1e6:.1f} MB is over the {self.max_object_bytes / 1e6:.0f} MB taken",
            )
        with self._lock:
            while uid in self._busy:
                self._lock.wait()
            if self.path_of(uid).exists():
                return None
            self._busy.add(uid)
        try:
            return self._store(uid, size, write)
        finally:
            with self._lock:
                self._busy.discard(uid)
                self._lock.notify_all()

    def _store(self, uid: str, size: int, write: Callable[[BinaryIO], object]) -> Arrival:
        try:
            free = shutil.disk_usage(self.folder).free
        except OSError as exc:
            raise StoreRefused(PROCESSING_FAILURE, f"store folder: {exc.strerror or exc}") from exc
        if free - size < self.min_free_bytes:
            raise StoreRefused(
                OUT_OF_RESOURCES,
                f"disk has {free / 1e6:.0f} MB free; {size / 1e6:.1f} MB more would leave less than "
                f"the {self.min_free_bytes / 1e6:.0f} MB kept",
            )
        tmp = self._write_temp(uid, write)
        try:
            try:
                image, first = check_image(tmp)
            except SourceError as exc:
                raise StoreRefused(status_of(exc), str(exc).replace(f"{tmp}: ", "")) from exc
            found = image.meta.get("SOPInstanceUID")
            if found != uid:
                raise StoreRefused(
                    DOES_NOT_MATCH, f"data set's SOP Instance UID {found!r} is not the request's"
                )
            final = self.path_of(uid)
            os.replace(tmp, final)
            _fsync_folder(self.folder)
        except StoreRefused:
            tmp.unlink(missing_ok=True)
            raise
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._refused_for(exc) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Arrival(image=moved(image, final), first=first, uid=uid)

    def _write_temp(self, uid: str, write: Callable[[BinaryIO], object]) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".{uid}.", suffix=_PART, dir=self.folder)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._refused_for(exc) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    @staticmethod
    def _refused_for(exc: OSError) -> StoreRefused:
        if exc.errno in _NO_SPACE:
            return StoreRefused(OUT_OF_RESOURCES, f"no space for the object: {exc.strerror or exc}")
        return StoreRefused(PROCESSING_FAILURE, f"cannot write the store: {exc.strerror or exc}")
