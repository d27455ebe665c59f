"""End to end: DICOM files that carry a marker in every identifying attribute, read by `edge run`,
leave nothing of it in what the outbox would send (the exact MQTT payload bytes)."""

from __future__ import annotations

import json
from pathlib import Path

from edge.config import Config
from edge.runtime.app import run
from edge.sync.outbox import Outbox
from tools.deid.markers import marker_study, save


def test_no_marker_of_the_source_reaches_a_payload(tmp_path: Path) -> None:
    patient_id = "MRK_PATIENT_0042"
    datasets, planted = marker_study(3, patient_id=patient_id)
    study = tmp_path / "DOE^JOHN MRK_FOLDER_77" / "study"  # a folder named after the patient
    study.mkdir(parents=True)
    for i, ds in enumerate(datasets):
        save(ds, study / f"{ds.PatientName}-{i}.dcm")
    config = Config().with_overrides(
        source={"url": f"dicom://{study}"},
        display={"sinks": ["null"]},
        output={"dir": tmp_path / "runs"},
        outbox={"keep": "all", "thumbnails": True, "thumbnail_min_priority": 0, "thumbnail_every_s": 0},
        deid={"key_file": tmp_path / "deid.key"},
    )
    report, _ = run(config, headless=True)
    assert report["counters"]["results"] == 3
    assert report["outbox"]["thumbnails"].get("made", 0) >= 1, report["outbox"]["thumbnails"]
    with Outbox(Path(report["outbox"]["path"])) as outbox:
        items = outbox.claim(1000, live_share=0)
    assert len(items) == 3
    forbidden = {*planted.texts, patient_id, "DOE", "JOHN", "MRK_FOLDER_77", str(study)}
    for item in items:
        text = item.payload.decode("utf-8")
        leaks = sorted(m for m in forbidden if m in text)
        assert not leaks, f"{leaks} in payload {text[:300]}"
        message = json.loads(text)
        assert message["device"]["id"] and message["result_id"] == item.result_id
    raw = b"".join(f.read_bytes() for f in study.iterdir())
    assert sum(m.encode() in raw for m in planted.texts) > 1000, "the input really carries the markers"
