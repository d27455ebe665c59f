"""`edge run` on real DICOM of several modalities: each model runs on the modalities it names only.

A chest radiograph used to show "gain too high 73%" from the ultrasound quality model and a CT slice
B-lines, with findings sent to the outbox. With the default mixed box the ultrasound models see the
ultrasound frame only, the X-ray models the radiograph only, and a CT slice (no model for it) runs
none: it carries ``no_model``, is shown under a banner, counted in the run report, and kept out of
the outbox.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from edge.config import Config
from edge.inference.chain import ModelChain
from edge.render.style import DEFAULT_STYLE
from edge.runtime.app import load_models
from edge.sources import open_source
from tests.support.dicom import installed_dicom
from tests.support.paths import run_edge


def _banner_rows(image: np.ndarray) -> int:
    """Rows from the top that are mostly the warning banner's fill."""
    fill = np.array(next(f for lv, f, _ in DEFAULT_STYLE.banner_colors if lv == "warning"))
    is_fill = (np.abs(image.astype(int) - fill).sum(axis=2) < 40).mean(axis=1) > 0.5
    return int(np.argmin(is_fill)) if not is_fill.all() else len(is_fill)


def test_a_folder_of_us_cr_and_ct_runs_the_ultrasound_models_on_the_ultrasound_frame_only(
    tmp_path: Path,
) -> None:
    exam = tmp_path / "exam"
    exam.mkdir()
    # Name order is replay order: the ultrasound frame, a chest-room radiograph (CR), a CT slice.
    shutil.copy(installed_dicom("US1_UNCR.dcm"), exam / "a_us.dcm")
    shutil.copy(installed_dicom("RG3_UNCR.dcm"), exam / "b_cr.dcm")
    shutil.copy(installed_dicom("CT_small.dcm"), exam / "c_ct.dcm")
    out = run_edge("run", "--headless", "--source", f"dicom://{exam}", "--report", "r.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit"] == "completed" and report["counters"]["results"] == 3
    lines = (tmp_path / report["outputs"]["results"]).read_text().splitlines()
    results = [json.loads(line) for line in lines]
    by_modality = {r["modality"]: r for r in results}
    assert set(by_modality) == {"US", "CR", "OT"}  # CT is "OT" to the runtime
    us, cr, ct = by_modality["US"], by_modality["CR"], by_modality["OT"]
    assert not us["no_model"] and [m["name"] for m in us["models"]] == ["us-quality", "lung-detector"]
    assert us["quality"] is not None
    assert not cr["no_model"] and [m["name"] for m in cr["models"]] == ["cxr-lungs", "cxr-finding"]
    assert cr["exposure"] is not None and cr["positioning"] is not None
    assert {f["label"] for f in cr["findings"]} & {"lung_left", "lung_right"}, "no ultrasound label"
    assert cr["clip_scores"] == [], "no B-line score on a radiograph"
    assert ct["no_model"] and ct["models"] == [], "a model ran on the CT slice"
    assert ct["quality"] is None and ct["findings"] == [] and not ct["gated"] and ct["priority"] == 0
    assert ct["clip_scores"] == [], "no B-line score on a frame no detector saw"
    assert report["chain"]["frames_without_model"] == {"OT": 1}
    routes = report["chain"]["routes"]
    assert routes["OT"] == [] and routes["CR"] == ["cxr-lungs", "cxr-finding"]
    assert routes["US"] == ["us-quality", "lung-detector"]
    assert report["outbox"]["puts"]["no_model"] == 1, "nothing no model made goes to the outbox"
    assert report["outbox"]["queued"] == report["outbox"]["puts"]["stored"] == 2
    cap = cv2.VideoCapture(str(tmp_path / report["outputs"]["video"]))
    frames = [cap.read()[1] for _ in range(3)]
    cap.release()
    banners = [_banner_rows(f) for f in frames]
    assert banners[0] == 0, "the ultrasound frame has no banner"
    assert banners[2] >= 8, f"the CT slice is shown under a banner: rows {banners}"


def test_the_bundled_models_never_see_a_ct_slice_through_the_chain() -> None:
    chain = ModelChain(load_models(Config()))
    assert {m for s in chain.slots for m in s.model.manifest.modality} <= {"US", "CR", "DX"}
    src = open_source(f"dicom://{installed_dicom('CT_small.dcm')}")
    src.open()
    try:
        frame = src.read(5.0)
    finally:
        src.close()
    assert frame is not None and frame.modality == "OT"
    runs = [s.runs for s in chain.slots]
    r = chain.run(frame).result
    assert r.no_model and r.models == () and r.findings == () and r.quality is None
    assert [s.runs for s in chain.slots] == runs and chain.frames_without_model == {"OT": 1}
