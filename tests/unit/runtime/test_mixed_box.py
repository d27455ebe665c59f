"""One config for a mixed box: a folder of ultrasound and X-ray DICOM through edge run, each frame to
its modality's models, every result through the same keep policy, de-identification and outbox; an
X-ray's exposure, positioning and priority in its message, its thumbnail only when its file says no
text is burned in. The X-ray models are tiny real ONNX stand-ins of models/cxr-lungs and cxr-finding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema

from edge.config import Config
from edge.runtime.app import run
from edge.sync.outbox import Outbox
from tests.support.dicom import installed_dicom
from tests.support.onnx_models import classifier_folder
from tests.support.results import SCHEMA_PATH
from tests.support.xray import film_dicom, radiologist_boxes
from tests.support.xray_models import finding_folder, lungs_folder


def test_ultrasound_and_x_ray_frames_each_reach_their_models_and_the_outbox(tmp_path: Path) -> None:
    data = tmp_path / "exam"
    data.mkdir()
    film_dicom(data / "1_cut_off.dcm", "cut_off", ExposureIndex=100, TargetExposureIndex=250,
               BurnedInAnnotation="NO")  # fmt: skip
    film_dicom(data / "2_good.dcm", "good", modality="CR", ExposureIndex=400, TargetExposureIndex=400,
               BurnedInAnnotation="YES")  # fmt: skip
    shutil.copy(installed_dicom("US1_UNCR.dcm"), data / "3_us.dcm")
    models = tmp_path / "models"
    us = classifier_folder(models / "us-q", labels=("diagnostic", "no_contact"), name="us-q")
    lungs = lungs_folder(models / "cxr-lungs", radiologist_boxes("cut_off"), (512, 512))
    finding = finding_folder(models / "cxr-finding", (0.0, 3.0))
    config = Config.model_validate({
        "source": {"url": f"dicom://{data}?realtime=0"},
        "models": [{"name": "us-q", "path": us}, {"name": "cxr-lungs", "path": lungs},
                   {"name": "cxr-finding", "path": finding}],
        "display": {"sinks": ["null"]},
        "output": {"dir": tmp_path / "runs"},
        "deid": {"key_file": tmp_path / "deid.key"},
        "outbox": {"thumbnails": True, "thumbnail_every_s": 0},
    })  # fmt: skip
    report, _ = run(config, headless=True)
    assert report["exit"] == "completed", report.get("reason")
    xray = ["cxr-lungs", "cxr-finding"]
    assert report["chain"]["routes"] == {"CR": xray, "DX": xray, "US": ["us-q"]}
    counts = report["chain"]["xray"]  # the stand-in detector boxes every film as the cut-off one
    assert counts["films"] == 2 and counts["exposure_under_far"] == counts["exposure_within"] == 1
    assert counts["repeat_exposure"] == 1 and counts["repeat_positioning"] == 2 and counts["review"] == 0
    with Outbox(Path(report["outbox"]["path"])) as outbox:
        items = outbox.claim(100, live_share=0)
    messages = {m["modality"]: m for m in (json.loads(i.payload) for i in items)}
    assert sorted(messages) == ["CR", "DX", "US"], "one result per still, each kept"
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    for m in messages.values():
        validator.validate(m)
        assert m["schema_version"] == 4 and "src-" in m["source_id"] and "exam" not in m["source_id"]
    dx, cr, us_message = messages["DX"], messages["CR"], messages["US"]
    assert dx["priority"] == 2 and dx["exposure"]["band"] == "under_far" and dx["positioning"]["repeat"]
    assert any("cut off" in line for line in dx["positioning"]["messages"])
    assert dx["thumbnail"] is not None, "Burned In Annotation NO: a thumbnail"
    assert cr["exposure"]["band"] == "within" and cr["thumbnail"] is None, "YES: none, fail closed"
    assert us_message["exposure"] is None and us_message["positioning"] is None
    assert us_message["quality"]["label"] in ("diagnostic", "no_contact")
    assert report["outbox"]["thumbnails"]["unavailable"] >= 1


def test_the_default_config_routes_each_modality_to_its_own_models() -> None:
    """The embedded default is a mixed box: the manifests' modality lists route US frames to the
    ultrasound models and CR/DX films to the X-ray models, and no model takes both."""
    from edge.inference.manifest import load_manifest

    config = Config()
    by_modality: dict[str, list[str]] = {}
    for m in config.models:
        for modality in load_manifest(config.model_dir(m)).manifest.modality:
            by_modality.setdefault(modality, []).append(m.name)
    assert by_modality["US"] == ["us-quality", "lung-detector"]
    assert by_modality["CR"] == by_modality["DX"] == ["cxr-lungs", "cxr-finding"]
