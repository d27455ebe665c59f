"""dicom+scp://: the Storage SCP with pynetdicom as the console, on a free loopback port; images from the
real pydicom-data chest CR (and a real ultrasound cine). Each test names the DICOM status it expects.
dcmtk's storescu/echoscu as the console: tests/integration/test_dicom_scp_dcmtk.py.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom.association import Association

from edge.errors import SourceError
from edge.sources import open_source
from edge.sources.dicom_scp import DicomScpSource
from edge.sources.dicom_store import (
    CANNOT_UNDERSTAND,
    NO_PIXEL_DATA,
    NOT_DISPLAYABLE,
    OUT_OF_RESOURCES,
    SUCCESS,
    TOO_LARGE,
)
from tests.support.dicom import installed_dicom, write_dicom
from tests.support.dicom_net import (
    CR,
    DX,
    MR,
    VERIFICATION,
    associate,
    pynetdicom_store,
    read_frames,
    renewed,
    scp_source,
    small_cr,
    stored_files,
    voi_lut_dx,
)
from tests.support.polling import wait_for

US = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage (multi-frame allowed)
SC = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def test_c_echo_answers_success(store: Path) -> None:
    with scp_source(store) as src:
        assoc = associate(src.port, [VERIFICATION])
        assert assoc.is_established
        assert int(assoc.send_c_echo().Status) == SUCCESS  # 0x0000
        assoc.release()
        wait_for(lambda: src.info.extra["echoes"] == 1, 5, "the echo counted")


@pytest.mark.parametrize(
    ("calling", "called", "reason"),
    [
        ("INTRUDER", "EDGE", 3),  # A-ASSOCIATE-RJ reason 3: calling AE title not recognised
        ("CONSOLE", "PACS", 7),  # reason 7: called AE title not recognised
    ],
)
def test_wrong_ae_title_is_rejected_at_association(
    store: Path, calling: str, called: str, reason: int
) -> None:
    with scp_source(store) as src:
        assoc = associate(src.port, [CR], calling=calling, called=called)
        assert assoc.is_rejected and not assoc.is_established
        rj = assoc.acceptor.primitive
        assert rj is not None
        assert (rj.result, rj.result_source, rj.diagnostic) == (
            1,
            1,
            reason,
        )  # rejected-permanent, service user
        wait_for(lambda: src.rejected_associations == 1, 5, "the rejection counted")
        assert "1 rejected" in (src.hud_text() or "")
    assert stored_files(store) == []


def test_callers_star_lets_any_calling_title_in(store: Path) -> None:
    with scp_source(store, callers="*") as src:
        assoc = associate(src.port, [VERIFICATION], calling="ANYONE")
        assert assoc.is_established
        assoc.release()


def test_a_cr_is_stored_durably_and_becomes_a_frame(store: Path) -> None:
    ds = small_cr(64)
    ds.ExposureIndex, ds.TargetExposureIndex, ds.DeviationIndex = 420.0, 400.0, 0.2
    ds.DetectorID, ds.BurnedInAnnotation = "DET-7", "NO"
    with scp_source(store) as src:
        assert pynetdicom_store(src.port, [ds]) == [SUCCESS]  # 0x0000, answered after the fsync
        assert stored_files(store) == [f"{ds.SOPInstanceUID}.dcm"]  # no temporary file left
        (frame,) = read_frames(src, 1)
        assert src.read(0.2) is None  # idle: a still source waits for the next exposure
    kept = pydicom.dcmread(store / f"{ds.SOPInstanceUID}.dcm")
    assert kept.SOPInstanceUID == ds.SOPInstanceUID and kept.PixelData == ds.PixelData
    assert frame.modality == "CR" and frame.image.shape == (64, 64, 3)
    assert frame.raw is not None and frame.raw.dtype == np.uint16
    assert (frame.raw == np.frombuffer(ds.PixelData, np.uint16).reshape(64, 64)).all()
    meta = frame.meta
    assert meta["SOPInstanceUID"] == ds.SOPInstanceUID and meta["SOPClassUID"] == CR
    assert (meta["ExposureIndex"], meta["TargetExposureIndex"], meta["DeviationIndex"]) == (420.0, 400.0, 0.2)
    assert (meta["BodyPartExamined"], meta["ViewPosition"]) == ("CHEST", "PA")  # from the real file
    assert (meta["DetectorID"], meta["BurnedInAnnotation"]) == ("DET-7", "NO")
    assert meta["file"] == str(store / f"{ds.SOPInstanceUID}.dcm") and meta["still"] is True
    assert "PatientName" not in meta and "PatientID" not in meta


@pytest.mark.parametrize(
    ("sop_class", "modality", "frame_modality"),
    [
        (CR, "CR", "CR"),
        (DX, "DX", "DX"),  # For Presentation
        ("1.2.840.10008.5.1.4.1.1.1.1.1", "DX", "DX"),  # DX For Processing
        (SC, "OT", "OT"),  # Secondary Capture
        ("1.2.840.10008.5.1.4.1.1.7.3", "OT", "OT"),  # Multi-frame Grayscale Word SC
        (US, "US", "US"),  # a single-frame ultrasound image
    ],
)
def test_each_image_class_is_taken(store: Path, sop_class: str, modality: str, frame_modality: str) -> None:
    ds = small_cr(32)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.Modality = modality
    with scp_source(store) as src:
        assert pynetdicom_store(src.port, [ds], contexts=[sop_class]) == [SUCCESS]  # 0x0000
        (frame,) = read_frames(src, 1)
    assert frame.modality == frame_modality and frame.meta["SOPClassUID"] == sop_class


def test_the_same_sop_instance_twice_is_stored_and_shown_once(store: Path) -> None:
    ds = small_cr(32)
    with scp_source(store) as src:
        assert pynetdicom_store(src.port, [ds]) == [SUCCESS]
        # the console lost the response and sends again, on a new association: success, no copy
        assert pynetdicom_store(src.port, [ds, ds]) == [SUCCESS, SUCCESS]
        frames = read_frames(src, 3, timeout=0.5)
        assert src.info.extra["duplicates"] == 2 and src.received == 1
    assert len(frames) == 1
    assert stored_files(store) == [f"{ds.SOPInstanceUID}.dcm"]


def test_a_stored_object_is_not_shown_again_after_a_restart(store: Path) -> None:
    ds = small_cr(32)
    with scp_source(store) as src:
        assert pynetdicom_store(src.port, [ds]) == [SUCCESS]
        assert len(read_frames(src, 1)) == 1
    with scp_source(store) as src:
        assert pynetdicom_store(src.port, [ds]) == [SUCCESS]
        assert src.read(0.3) is None


def test_16_bit_image_with_a_voi_lut_is_accepted_and_shown_through_it(store: Path) -> None:
    ds, lut = voi_lut_dx(96)
    with scp_source(store) as src:
        assert pynetdicom_store(src.port, [ds], contexts=[ds.SOPClassUID]) == [SUCCESS]  # 0x0000
        (frame,) = read_frames(src, 1)
    stored = np.frombuffer(ds.PixelData, np.uint16).reshape(96, 96)
    expected = np.rint((lut[stored].astype(np.float64) - lut.min()) / (lut.max() - lut.min()) * 255)
    assert frame.modality == "DX"
    assert np.abs(frame.image[..., 0].astype(int) - expected).max() <= 1  # the LUT, not the window
    assert frame.raw is not None and (frame.raw == stored).all()


def test_truncated_dataset_gets_cannot_understand_and_nothing_is_stored(store: Path, tmp_path: Path) -> None:
    ds = small_cr(64)
    whole = tmp_path / "whole.dcm"
    ds.save_as(whole, enforce_file_format=True)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size - 3000])  # the file ends inside Pixel Data
    short = renewed(small_cr(64))
    short.PixelData = short.PixelData[:2048]  # well formed, but a quarter of the image it declares
    with scp_source(store) as src:
        assert pynetdicom_store(src.port, [cut, short]) == [CANNOT_UNDERSTAND, CANNOT_UNDERSTAND]  # 0xC000
        assert src.read(0.2) is None
        assert src.refused == 2 and "truncated" in (src.last_refusal or "")
    assert stored_files(store) == []


def test_unsupported_sop_class_is_rejected_at_association(store: Path) -> None:
    with scp_source(store) as src:
        assoc = associate(src.port, [CR, MR])
        assert assoc.is_established
        # presentation context result 3: abstract syntax not supported (MR is not taken here)
        assert [(c.abstract_syntax, c.result) for c in assoc.rejected_contexts] == [(MR, 3)]
        mr = pydicom.dcmread(installed_dicom("MR_small.dcm"))
        with pytest.raises(ValueError, match="No presentation context"):
            assoc.send_c_store(mr)
        assoc.release()
        only_mr = associate(src.port, [MR])
        assert not only_mr.is_established  # nothing acceptable: no association at all
        assert [(c.abstract_syntax, c.result) for c in only_mr.rejected_contexts] == [(MR, 3)]
    assert stored_files(store) == []


def test_no_pixel_data_gets_a_failure_status(store: Path) -> None:
    ds = small_cr(32)
    del ds.PixelData
    with scp_source(store) as src:
        assert pynetdicom_store(src.port, [ds]) == [NO_PIXEL_DATA]  # 0xC001
        assert "no Pixel Data" in (src.last_refusal or "")
    assert stored_files(store) == []


def test_a_pixel_format_that_cannot_be_shown_gets_a_failure_status(store: Path, tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "hsv.dcm", bytes(8 * 8 * 3), rows=8, cols=8, samples=3,
                       photometric="HSV", modality="OT")  # fmt: skip
    with scp_source(store) as src:
        assert pynetdicom_store(src.port, [path], contexts=[SC]) == [NOT_DISPLAYABLE]  # 0xC002
        assert "HSV" in (src.last_refusal or "")
    assert stored_files(store) == []


def test_disk_below_the_free_space_kept_is_out_of_resources(store: Path) -> None:
    free_mb = int(shutil.disk_usage(store.parent).free / 1e6)
    with scp_source(store, min_free_mb=free_mb + 1000) as src:
        assert pynetdicom_store(src.port, [small_cr(32)]) == [OUT_OF_RESOURCES]  # 0xA700
        assert "DICOM store full" in (src.status_text() or "")  # red on the HUD
    assert stored_files(store) == []


def test_an_object_over_max_mb_is_refused(store: Path) -> None:
    with scp_source(store, max_mb=0.001) as src:
        assert pynetdicom_store(src.port, [small_cr(64)]) == [TOO_LARGE]  # 0xA701, out of resources
        assert src.status_text() is None  # the disk is fine
    assert stored_files(store) == []


def test_an_ultrasound_cine_is_played_frame_by_frame(store: Path) -> None:
    ds = renewed(pydicom.dcmread(installed_dicom("OBXXXX1A_2frame.dcm")))
    with scp_source(store) as src:
        assert ds.SOPClassUID == US and ds.NumberOfFrames == 2
        assert pynetdicom_store(src.port, [ds], contexts=[US]) == [SUCCESS]
        frames = read_frames(src, 3, timeout=2.0)
    assert [f.meta["frame_index"] for f in frames] == [0, 1]
    assert [f.seq for f in frames] == [0, 1]
    assert {f.modality for f in frames} == {"US"} and frames[0].meta["still"] is False
    assert frames[1].t_acquired_ns > frames[0].t_acquired_ns


def test_a_partly_written_object_from_a_crash_is_removed_at_open(store: Path) -> None:
    store.mkdir()
    (store / f".{generate_uid()}.abc.part").write_bytes(b"half an object")
    with scp_source(store):
        assert stored_files(store) == []


def test_port_0_picks_a_free_port_and_the_hud_says_it_is_listening(store: Path) -> None:
    with scp_source(store) as src:
        assert src.port > 0 and src.info.extra["port"] == src.port
        assert pynetdicom_store(src.port, [small_cr(32)]) == [SUCCESS]
        text = src.hud_text() or ""
        assert f"DICOM EDGE:{src.port} listening" in text and "1 received" in text


def test_close_stops_every_thread_and_a_restart_listens_on_the_same_port(store: Path) -> None:
    before = set(threading.enumerate())
    with scp_source(store) as src:
        port = src.port
        assoc = associate(port, [VERIFICATION])  # left open by the console: close() must end it
        assert assoc.is_established
    wait_for(lambda: set(threading.enumerate()) - {*before, *_client_threads()} == set(), 5,
             "the SCP's threads to end", lambda: str(set(threading.enumerate()) - before))  # fmt: skip
    assoc.abort()
    again = open_source(f"dicom+scp://127.0.0.1:{port}?callers=CONSOLE&store={store}")  # a restart
    with again:
        assert isinstance(again, DicomScpSource) and again.port == port
    with pytest.raises(SourceError, match="not open"):
        src.read(0.1)


def _client_threads() -> set[threading.Thread]:
    """The pynetdicom requestor's own threads (the test's console), which the SCP does not own."""
    return {t for t in threading.enumerate() if isinstance(t, Association)}


def test_read_while_idle_returns_none_at_its_timeout(store: Path) -> None:
    with scp_source(store) as src:
        t0 = time.monotonic()
        assert src.read(0.3) is None and not src.eof
        assert time.monotonic() - t0 >= 0.25


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("aet=EDGE", "callers=AE1,AE2"),
        ("aet=EDGE&callers=A&colour=1", "unknown query parameter"),
        ("aet=ABCDEFGHIJKLMNOPQ&callers=A", "aet: .*longer than 16"),
        ("aet=EDGE&callers=A\\B", "callers: .*backslash"),
        ("aet=EDGE&callers=*,A", "callers: .*cannot be combined"),
        ("aet=EDGE&callers=A&max_mb=0", "max_mb: "),
    ],
)
def test_bad_urls_are_refused_naming_the_key(store: Path, query: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(f"dicom+scp://127.0.0.1:0?{query}&store={store}")


def test_bad_port_and_a_port_in_use(store: Path) -> None:
    with pytest.raises(SourceError, match="port must be a number from 0 to 65535"):
        open_source(f"dicom+scp://127.0.0.1:70000?callers=A&store={store}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        src = open_source(f"dicom+scp://127.0.0.1:{sock.getsockname()[1]}?callers=A&store={store}")
        assert isinstance(src, DicomScpSource)
        with pytest.raises(SourceError, match="cannot listen"):
            src.open()
