"""The SCP's store on its own: one copy per SOP Instance UID when two associations bring it at once, a
write the file system refuses (a real EFBIG from a file size limit, in a child process), UIDs that
must not become paths, a data set that is not the instance it claims to be."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from io import BytesIO
from pathlib import Path

import pytest

from edge.sources.dicom_store import (
    CANNOT_UNDERSTAND,
    DOES_NOT_MATCH,
    OUT_OF_RESOURCES,
    Arrival,
    DicomStore,
    StoreRefused,
)
from tests.support.dicom_net import small_cr


def encoded(uid: str | None = None) -> tuple[str, bytes]:
    """A small CR as a Part 10 file's bytes (what the SCP writes), and its SOP Instance UID."""
    ds = small_cr(48)
    if uid is not None:
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return str(ds.SOPInstanceUID), buffer.getvalue()


def opened_store(folder: Path, min_free_bytes: int = 0) -> DicomStore:
    store = DicomStore(folder, max_object_bytes=10**8, min_free_bytes=min_free_bytes)
    store.open()
    return store


def test_the_same_uid_from_two_associations_at_once_is_stored_once(tmp_path: Path) -> None:
    store = opened_store(tmp_path / "store")
    uid, data = encoded()
    start = threading.Barrier(8)
    outcomes: list[Arrival | None] = []

    def deliver() -> None:
        start.wait()
        outcomes.append(store.put(uid, len(data), lambda fh: fh.write(data)))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(o is not None for o in outcomes) == 1 and len(outcomes) == 8
    assert sorted(p.name for p in store.folder.iterdir()) == [f"{uid}.dcm"]


def test_a_write_the_file_system_refuses_is_out_of_resources_and_leaves_nothing(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the kernel refuse the write past 64 KB (EFBIG), as a full disk refuses it."""
    folder = tmp_path / "store"
    script = textwrap.dedent(f"""
        import resource, signal
        from pathlib import Path
        from edge.sources.dicom_store import DicomStore, StoreRefused
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        store = DicomStore(Path({str(folder)!r}), 10**8, 0)
        store.open()
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
        try:
            store.put("1.2.3.4", 200_000, lambda fh: fh.write(bytes(200_000)))
        except StoreRefused as exc:
            print(hex(exc.status), exc.reason)
    """)
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(hex(OUT_OF_RESOURCES)) and "no space for the object" in run.stdout  # 0xa700
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("uid", ["../../etc/x", "1.2.3/../4", "", "1.2." + "3" * 70, "1..2"])
def test_a_uid_that_is_not_a_uid_never_becomes_a_path(tmp_path: Path, uid: str) -> None:
    store = opened_store(tmp_path / "store")
    with pytest.raises(StoreRefused) as refused:
        store.put(uid, 10, lambda fh: fh.write(b"0123456789"))
    assert refused.value.status == CANNOT_UNDERSTAND  # 0xC000
    assert list(store.folder.iterdir()) == []


def test_a_data_set_that_is_another_instance_than_requested_is_refused(tmp_path: Path) -> None:
    store = opened_store(tmp_path / "store")
    _, data = encoded()
    with pytest.raises(StoreRefused) as refused:
        store.put("1.2.3.4.5", len(data), lambda fh: fh.write(data))
    assert refused.value.status == DOES_NOT_MATCH  # 0xA900
    assert list(store.folder.iterdir()) == []


def test_a_store_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(Exception, match="file/store: the DICOM store cannot be written"):
        DicomStore(tmp_path / "file" / "store", 10, 0).open()
