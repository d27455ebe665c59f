"""dicom+scp:// against a client nobody here wrote: dcmtk's storescu and echoscu (skipped, naming dcmtk,
where they are not installed; ``scripts/setup.sh --test`` installs them), and pynetdicom beside them
for the load test. Images come from the real pydicom-data chest CR (RG1_UNCR.dcm) with new SOP
Instance UIDs. Each test names the DICOM status it expects.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest

from edge.config import Config
from edge.frames import Frame
from edge.results import Box, Finding
from edge.runtime.app import run
from edge.sources import open_source
from edge.sources.dicom_scp import DicomScpSource
from edge.sources.dicom_store import CANNOT_UNDERSTAND, NO_PIXEL_DATA, SUCCESS
from edge.sync.outbox import Outbox
from tests.support.dicom import installed_dicom
from tests.support.dicom_net import (
    chest_cr,
    dimse_statuses,
    echoscu,
    pynetdicom_store,
    read_frames,
    renewed,
    require_dcmtk,
    scp_source,
    small_cr,
    stored_files,
    storescu,
    voi_lut_dx,
    write_small_crs,
)
from tests.support.polling import wait_for
from tests.support.xray_models import finding_folder, lungs_folder

SUCCESS_LINE = "Received Store Response (Success)"


@pytest.fixture(autouse=True)
def _dcmtk() -> None:
    require_dcmtk()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def test_echoscu_gets_success(store: Path) -> None:
    with scp_source(store) as src:
        run = echoscu(src.port)
    assert run.returncode == 0, run.stderr
    assert "Received Echo Response (Success)" in run.stdout + run.stderr  # 0x0000


@pytest.mark.parametrize(
    ("calling", "called", "reason"),
    [
        ("INTRUDER", "EDGE", "Calling AE Title Not Recognized"),
        ("CONSOLE", "PACS", "Called AE Title Not Recognized"),
    ],
)
def test_wrong_ae_title_is_rejected(
    store: Path, tmp_path: Path, calling: str, called: str, reason: str
) -> None:
    (file,) = write_small_crs(tmp_path / "out", 1)
    with scp_source(store) as src:
        run = storescu(src.port, [file], calling=calling, called=called)
        echo = echoscu(src.port, calling=calling, called=called)
    for output in (run.stdout + run.stderr, echo.stdout + echo.stderr):
        assert "Association Rejected" in output and "Rejected Permanent" in output and reason in output
    assert run.returncode != 0 and echo.returncode != 0
    assert stored_files(store) == []


def test_a_full_size_chest_cr_arrives_whole(store: Path, tmp_path: Path) -> None:
    path = tmp_path / "chest.dcm"
    renewed(pydicom.dcmread(installed_dicom("RG1_UNCR.dcm"))).save_as(path)
    with scp_source(store) as src:
        run = storescu(src.port, [path])
        (frame,) = read_frames(src, 1)
    assert run.stdout.count(SUCCESS_LINE) + run.stderr.count(SUCCESS_LINE) == 1, run.stderr  # 0x0000
    sent = pydicom.dcmread(path)
    assert frame.modality == "CR" and frame.raw is not None and (frame.raw == sent.pixel_array).all()
    assert frame.image.shape == (1955, 1841, 3)


def test_truncated_pixel_data_gets_cannot_understand(store: Path, tmp_path: Path) -> None:
    ds = small_cr(64)
    ds.PixelData = ds.PixelData[:4096]  # half the image its Rows and Columns declare
    path = tmp_path / "short.dcm"
    ds.save_as(path, enforce_file_format=True)
    with scp_source(store) as src:
        run = storescu(src.port, [path], debug=True)
        assert src.read(0.2) is None
    assert dimse_statuses(run.stdout + run.stderr) == [CANNOT_UNDERSTAND]  # 0xC000
    assert stored_files(store) == []


def test_no_pixel_data_gets_a_failure_status(store: Path, tmp_path: Path) -> None:
    ds = small_cr(32)
    del ds.PixelData
    path = tmp_path / "nopixels.dcm"
    ds.save_as(path, enforce_file_format=True)
    with scp_source(store) as src:
        run = storescu(src.port, [path], debug=True)
    output = run.stdout + run.stderr
    assert dimse_statuses(output) == [NO_PIXEL_DATA]  # 0xC001
    assert "no Pixel Data" in output  # the Error Comment (0000,0902) storescu prints
    assert stored_files(store) == []


def test_unsupported_sop_class_has_no_presentation_context(store: Path) -> None:
    mr = installed_dicom("MR_small.dcm")
    with scp_source(store) as src:
        run = storescu(src.port, [mr])
    # the SCP answered the MR context "abstract syntax not supported": storescu cannot send it
    assert "No presentation context for: (MR)" in run.stdout + run.stderr
    assert stored_files(store) == []


def test_16_bit_dx_with_a_voi_lut_is_accepted_and_shown_through_it(store: Path, tmp_path: Path) -> None:
    ds, lut = voi_lut_dx(96)
    path = tmp_path / "dx.dcm"
    ds.save_as(path, enforce_file_format=True)
    with scp_source(store) as src:
        run = storescu(src.port, [path], debug=True)
        (frame,) = read_frames(src, 1)
    assert dimse_statuses(run.stdout + run.stderr) == [SUCCESS]  # 0x0000
    stored = np.frombuffer(ds.PixelData, np.uint16).reshape(96, 96)
    expected = np.rint((lut[stored].astype(np.float64) - lut.min()) / (lut.max() - lut.min()) * 255)
    assert np.abs(frame.image[..., 0].astype(int) - expected).max() <= 1


def test_a_voi_lut_pydicom_cannot_read_gets_cannot_understand_not_a_crash(
    store: Path, tmp_path: Path
) -> None:
    """A 32768-entry LUT is over 64 KB: in explicit VR it can only travel as UN, which pydicom cannot
    apply; the console hears 0xC000 and the SCP takes the next image."""
    ds, _ = voi_lut_dx(32)
    ds.VOILUTSequence[0].LUTDescriptor = [32768, 0, 16]
    ds.VOILUTSequence[0].LUTData = list(range(0, 65536, 2))
    path = tmp_path / "un_lut.dcm"
    with pytest.warns(UserWarning, match="changed from 'US' to 'UN'"):
        ds.save_as(path, enforce_file_format=True)
    (good,) = write_small_crs(tmp_path / "good", 1)
    with scp_source(store) as src:
        run = storescu(src.port, [path, good], debug=True)
    assert dimse_statuses(run.stdout + run.stderr) == [CANNOT_UNDERSTAND, SUCCESS]  # 0xC000, then 0x0000
    assert len(stored_files(store)) == 1


def test_500_images_from_4_clients_at_once_arrive_each_exactly_once(store: Path, tmp_path: Path) -> None:
    """Two storescu processes and two pynetdicom associations at the same time, 125 images each, and each
    re-sends 5 of the next client's (a console retrying after a lost response): 520 sends, 500 images."""
    assert chest_cr().Modality == "CR"
    sets = [write_small_crs(tmp_path / f"client{c}", 125, size=48) for c in range(4)]
    sends = [files + sets[(c + 1) % 4][:5] for c, files in enumerate(sets)]
    expected = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for files in sets for p in files}
    assert len(expected) == 500
    frames: list[Frame] = []
    outcomes: dict[int, object] = {}
    with scp_source(store) as src:
        reader = threading.Thread(target=lambda: frames.extend(read_frames(src, 600, timeout=15.0)))
        reader.start()
        clients = [
            threading.Thread(target=_send_dcmtk, args=(src, sends[0], outcomes, 0)),
            threading.Thread(target=_send_dcmtk, args=(src, sends[1], outcomes, 1)),
            threading.Thread(target=_send_pynetdicom, args=(src, sends[2], outcomes, 2)),
            threading.Thread(target=_send_pynetdicom, args=(src, sends[3], outcomes, 3)),
        ]
        for t in clients:
            t.start()
        for t in clients:
            t.join(120)
        reader.join(60)
        received, duplicates = src.received, src.duplicates
    assert outcomes == {0: 130, 1: 130, 2: [SUCCESS] * 130, 3: [SUCCESS] * 130}  # every send: 0x0000
    shown = Counter(f.meta["SOPInstanceUID"] for f in frames)
    assert set(shown) == expected and set(shown.values()) == {1}  # each exactly once
    assert [f.seq for f in frames] == list(range(500))
    assert (received, duplicates) == (500, 20)
    assert stored_files(store) == sorted(f"{uid}.dcm" for uid in expected)


def _send_dcmtk(src: DicomScpSource, files: list[Path], outcomes: dict[int, object], key: int) -> None:
    run = storescu(src.port, files)
    outcomes[key] = (run.stdout + run.stderr).count(SUCCESS_LINE)


def _send_pynetdicom(src: DicomScpSource, files: list[Path], outcomes: dict[int, object], key: int) -> None:
    outcomes[key] = pynetdicom_store(src.port, files)


def test_edge_run_receives_from_storescu_and_keeps_one_result_per_image(tmp_path: Path) -> None:
    """The runtime end to end: storescu sends three films with exposure indices to edge run's SCP,
    which routes them to the X-ray models (tiny real ONNX stand-ins) and keeps one result each."""
    films = []
    for i, ei in enumerate((100.0, 400.0, 1600.0)):  # under, on and over a target of 400
        ds = small_cr(256)
        ds.ExposureIndex, ds.TargetExposureIndex = ei, 400.0
        ds.BurnedInAnnotation = "NO"
        films.append(tmp_path / f"film_{i}.dcm")
        ds.save_as(films[-1], enforce_file_format=True)
    boxes = [
        Finding(label="lung_right", confidence=0.9, box=Box(30, 40, 120, 220)),
        Finding(label="lung_left", confidence=0.9, box=Box(136, 40, 226, 220)),
    ]
    models = tmp_path / "models"
    config = Config.model_validate({
        "models": [{"name": "cxr-lungs", "path": lungs_folder(models / "cxr-lungs", boxes, (256, 256))},
                   {"name": "cxr-finding", "path": finding_folder(models / "cxr-finding", (0.0, 3.0))}],
        "display": {"sinks": ["null"]},
        "output": {"dir": tmp_path / "runs"},
        "deid": {"key_file": tmp_path / "deid.key"},
    })  # fmt: skip
    src = open_source(f"dicom+scp://127.0.0.1:0?aet=EDGE&callers=CONSOLE&store={tmp_path / 'store'}")
    assert isinstance(src, DicomScpSource)
    runs: list[object] = []

    def console() -> None:
        wait_for(lambda: src.port != 0, 60, "the SCP to listen")
        runs.append(storescu(src.port, films))

    sender = threading.Thread(target=console)
    sender.start()
    report, _ = run(config, headless=True, max_frames=3, source=src)
    sender.join(60)
    assert report["exit"] == "completed", report.get("reason")
    assert report["source"]["extra"]["received"] == 3 and report["counters"]["results"] == 3
    assert report["chain"]["routes"] == {"CR": ["cxr-lungs", "cxr-finding"]}
    assert report["latency_ms"]["capture_to_result"]["count"] == 3
    with Outbox(Path(report["outbox"]["path"])) as outbox:
        messages = [json.loads(item.payload) for item in outbox.claim(100, live_share=0)]
    assert {m["modality"] for m in messages} == {"CR"} and len(messages) == 3
    # DI = 10 log10(EI / 400): -6, 0, +6 (the far bands lie beyond +-3)
    assert sorted(m["exposure"]["band"] for m in messages) == ["over_far", "under_far", "within"]
