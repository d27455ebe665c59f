"""The outbox in a run: every result kept as a valid schema v2 message, HUD line, thumbnails."""

from __future__ import annotations

import base64
import json
import logging
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import pytest

from edge.config import DEFAULT_CLIP, Config
from edge.frames import Frame, Geometry, UltrasoundRegion
from edge.results import Box, Finding, ModelInfo, Quality, Result, StageTimes, new_result_id
from edge.runtime.app import run
from edge.sources.base import SourceInfo
from edge.sync.messages import Device, result_message
from edge.sync.outbox import Outbox
from edge.sync.recorder import OutboxRecorder, OutboxWriteError, ThumbnailPolicy, load_scrub

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "result.schema.json").read_text())


def test_a_run_keeps_every_result_as_a_valid_message(tmp_path: Path) -> None:
    config = Config().with_overrides(
        source={"url": f"video://{DEFAULT_CLIP}?realtime=0"},
        display={"sinks": ["null"]},
        output={"dir": tmp_path / "runs"},
        device={"id": "edge-test-7", "site": "bench"},
        deid={"key_file": tmp_path / "deid.key"},
        outbox={"keep": "all"},
    )
    report, outputs = run(config, headless=True, max_frames=40)
    n = report["counters"]["results"]
    assert n > 0 and report["counters"]["inference_errors"] == 0
    ob = report["outbox"]
    assert ob["puts"] == {"stored": n} and ob["queued"] == n and ob["quota_state"] == "ok"
    assert ob["path"] == str(tmp_path / "runs" / "outbox.sqlite3")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    with Outbox(Path(ob["path"])) as outbox:
        items = outbox.claim(10_000, live_share=0)
    assert len(items) == n
    messages = [json.loads(i.payload) for i in items]
    for m in messages:
        validator.validate(m)
    assert {m["device"]["id"] for m in messages} == {"edge-test-7"}
    assert len({m["exam_pseudonym"] for m in messages}) == 1  # one run, one exam
    assert sorted(m["frame_seq"] for m in messages) == sorted({m["frame_seq"] for m in messages})
    jsonl = [json.loads(line) for line in outputs.results.read_text().splitlines()] if outputs.results else []
    assert {m["result_id"] for m in messages} == {r["result_id"] for r in jsonl}
    # de-identified before it was kept: the clip's file name is a keyed pseudonym, the exam one too
    assert ob["scrubbed"] and len({m["source_id"] for m in messages}) == 1
    assert "src-" in messages[0]["source_id"] and DEFAULT_CLIP.name not in messages[0]["source_id"]
    assert messages[0]["exam_pseudonym"].startswith("ex-")
    # a second run adds to the same outbox; nothing of the first is lost
    report2, _ = run(config, headless=True, max_frames=10)
    assert report2["outbox"]["queued"] == n + report2["counters"]["results"]


def _result(priority: int = 1, seq: int = 0) -> Result:
    return Result(
        result_id=new_result_id(),
        frame_seq=seq,
        frame_wall_time=time.time(),
        source_id="dicom:///data/DOE_JOHN/IM0001.dcm",
        modality="US",
        quality=Quality("diagnostic", 0.9, True, {"diagnostic": 0.9}),
        findings=(Finding("b_line", 0.8, Box(20, 20, 60, 50)),) if priority else (),
        models=(ModelInfo("m", "1", "ab" * 32, "int8", "onnxruntime", "CPUExecutionProvider"),),
        times=StageTimes(0, 1, 2, 3, 4),
        priority=priority,
        image_size=(160, 120),
    )


def _frame(seq: int = 0) -> Frame:
    return Frame(np.full((120, 160, 3), 90, np.uint8), seq, 0, "us://")


def test_hud_line_shows_the_queue_then_the_alarm_in_capitals(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "ob.sqlite3", quota_bytes=300_000, thumbnail_fraction=0.5)
    rec = OutboxRecorder(outbox, Device("edge-x"), refresh_s=0.0)
    assert rec.hud_text() == "outbox 0 queued"
    rec(_frame(), _result())
    rec(_frame(), _result())
    assert (rec.hud_text() or "").startswith("outbox 2 queued, oldest ")
    outbox.mark_sent([outbox.claim(1)[0].result_id])
    rec(_frame(), _result())
    assert ", last sent 0s ago" in (rec.hud_text() or "")
    for _ in range(400):
        rec(_frame(), _result())
        if rec.outcomes["refused"]:
            break
    assert (rec.hud_text() or "").startswith("OUTBOX FULL: RESULTS REFUSED")
    report = rec.report()
    assert report["refused"] >= 1 and report["queued"] + report["sent"] == rec.outcomes["stored"]
    outbox.close()


def test_the_outbox_keeps_only_scrubbed_payloads(tmp_path: Path) -> None:
    config = Config().with_overrides(deid={"key_file": tmp_path / "k" / "deid.key"})
    scrub = load_scrub(config)
    assert stat.S_IMODE((tmp_path / "k" / "deid.key").stat().st_mode) == 0o600  # made on first use
    with Outbox(tmp_path / "ob.sqlite3", scrub=scrub) as outbox:
        rec = OutboxRecorder(outbox, Device("edge-x"), exam_pseudonym="Doe^John 1970")
        rec(_frame(), _result())
        payload = outbox.claim(1)[0].payload
    message = json.loads(payload)
    assert b"DOE_JOHN" not in payload and b"Doe" not in payload
    assert message["source_id"].startswith("dicom:src-") and message["exam_pseudonym"].startswith("ex-")
    again = load_scrub(config)(result_message(_result(), Device("edge-x")))  # the key is kept: stable
    assert again["source_id"] == message["source_id"]


def _scan(seq: int, regions: tuple[UltrasoundRegion, ...]) -> Frame:
    """A frame with a bright band outside the scan region (burned-in text)."""
    image = np.full((120, 160, 3), 90, np.uint8)
    image[:15] = 255  # "patient name" strip at the top, outside the region
    return Frame(image, seq, 0, "us://", geometry=Geometry(regions=regions))


def _blackout(calls: list[Sequence[tuple[int, int, int, int]]]) -> Any:
    def blackout(image: np.ndarray, rects: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
        calls.append(rects)
        out = np.zeros_like(image)
        for x0, y0, x1, y1 in rects:
            out[y0:y1, x0:x1] = image[y0:y1, x0:x1]
        return out

    return blackout


def test_thumbnails_are_masked_small_jpegs_of_the_results_frame(tmp_path: Path) -> None:
    regions = (UltrasoundRegion(20, 20, 140, 110),)
    calls: list[Sequence[tuple[int, int, int, int]]] = []
    with Outbox(tmp_path / "ob.sqlite3") as outbox:
        policy = ThumbnailPolicy(long_side=80, quality=90, min_priority=1, every_s=0)
        rec = OutboxRecorder(outbox, Device("edge-x"), thumbnails=policy)
        rec.blackout = _blackout(calls)
        rec(_scan(5, regions), _result(priority=1, seq=5))  # drawn on the frame it is handed
        rec(_scan(4, regions), _result(priority=0, seq=4))  # no finding: no thumbnail
        rec(None, _result(priority=1, seq=0))  # the runtime let the frame go: no thumbnail, counted
        msgs = {json.loads(i.payload)["frame_seq"]: json.loads(i.payload) for i in outbox.claim(10)}
    assert calls == [[(20, 20, 140, 110)]]
    assert msgs[4]["thumbnail"] is None and msgs[0]["thumbnail"] is None
    t = msgs[5]["thumbnail"]
    assert (t["width"], t["height"]) == (80, 60)
    img = cv2.imdecode(np.frombuffer(base64.b64decode(t["data_b64"]), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (60, 80, 3)
    assert img[0:6, 45:80].max() < 40  # the burned-in strip (right of the quality meter) is black
    assert 70 < img[30, 40].mean() < 110  # the scan region is kept
    assert rec.thumbs == {"made": 1, "frame_gone": 1}


def test_no_thumbnail_without_a_scan_region_or_when_masking_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.sync.recorder")
    policy = ThumbnailPolicy(min_priority=0, every_s=0)

    def refuses(image: np.ndarray, rects: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
        raise ValueError("rectangles cover the whole image")

    for regions, blackout in (((), _blackout([])), ((UltrasoundRegion(0, 0, 10, 10),), refuses)):
        with Outbox(tmp_path / f"ob{len(regions)}.sqlite3") as outbox:
            rec = OutboxRecorder(outbox, Device("edge-x"), thumbnails=policy)
            rec.blackout = blackout
            rec(_scan(0, regions), _result(seq=0))
            rec(_scan(1, regions), _result(seq=1))
            assert all(json.loads(i.payload)["thumbnail"] is None for i in outbox.claim(10))
        assert rec.thumbs == {"unavailable": 2}
    warnings = [r.getMessage() for r in caplog.records if "fail closed" in r.getMessage()]
    assert len(warnings) == 2  # once per reason, not once per frame
    assert "region unknown" in warnings[0] and "masking failed" in warnings[1]


def test_device_and_outbox_config(tmp_path: Path) -> None:
    from edge.config import load_config
    from edge.errors import ConfigError

    assert Config().device.id.startswith("edge-") and Config().outbox.enabled
    assert Config().outbox_path() == Path("runs") / "outbox.sqlite3"
    toml = tmp_path / "edge.toml"
    toml.write_text(
        '[device]\nid = "edge-7"\nsite = "north"\n[outbox]\npath = "state/ob.sqlite3"\nthumbnails = true\n'
    )
    c = load_config(toml)
    assert (c.device.id, c.device.site, c.outbox.thumbnails) == ("edge-7", "north", True)
    assert c.outbox_path() == tmp_path / "state" / "ob.sqlite3"  # relative to the config file
    toml.write_text('[device]\nid = "edge 7/x"\n')
    with pytest.raises(ConfigError, match=r"key device\.id"):
        load_config(toml)
    toml.write_text("[outbox]\nquota_bytes = 10\n")
    with pytest.raises(ConfigError, match=r"key outbox\.quota_bytes"):
        load_config(toml)


def test_a_message_the_outbox_cannot_take_is_counted_and_alarmed(tmp_path: Path) -> None:
    def broken_scrub(d: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("scrubber bug")

    with Outbox(tmp_path / "ob.sqlite3", scrub=broken_scrub) as outbox:
        rec = OutboxRecorder(outbox, Device("edge-x"))
        # Raised for the runtime to count against the outbox's failure budget, naming the result.
        result = _result()
        with pytest.raises(OutboxWriteError, match=f"ob.sqlite3 refused result {result.result_id}") as info:
            rec(_frame(), result)
        assert isinstance(info.value.__cause__, KeyError)
        assert rec.outcomes["refused"] == 1 and (rec.hud_text() or "").startswith("OUTBOX WRITE FAILED")
        assert rec.name == "outbox" and not getattr(rec, "expendable", False), "never stopped on a full disk"


def test_a_new_device_key_is_said_loudly_with_its_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config().with_overrides(deid={"key_file": tmp_path / "k" / "deid.key"})
    with caplog.at_level(logging.WARNING):
        load_scrub(config)
    new = [r for r in caplog.records if r.levelno >= logging.WARNING and "new device key" in r.getMessage()]
    assert len(new) == 1 and str(tmp_path / "k" / "deid.key") in new[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_scrub(config)  # the same key again: nothing to say
    assert "new device key" not in caplog.text


def _verdict(
    wall: float, quality: str = "diagnostic", labels: tuple[str, ...] = (), priority: int = 0
) -> Result:
    findings = tuple(Finding(lab, 0.9, Box(1, 1, 5, 5), False, 0) for lab in labels)
    return Result(new_result_id(), 1, wall, "src", "US", Quality(quality, 0.9, quality == "diagnostic", {}),
                  findings, (), StageTimes(0, 0, 0, 0, 0), priority=priority)  # fmt: skip


def test_keep_changes_skips_repeats_but_keeps_changes_urgent_and_a_heartbeat() -> None:
    from edge.sync.recorder import KeepPolicy

    keep = KeepPolicy("changes", heartbeat_s=1.0)
    t = 1000.0
    assert keep.keep(_verdict(t, labels=("b_line",)))
    assert not keep.keep(_verdict(t + 0.03, labels=("b_line",))), "the same verdict 30 ms later"
    assert keep.keep(_verdict(t + 0.06, labels=("b_line", "b_line"))), "one B-line more"
    assert not keep.keep(_verdict(t + 0.09, labels=("b_line", "b_line")))
    assert keep.keep(_verdict(t + 0.12, quality="no_contact", labels=("b_line", "b_line")))
    assert keep.keep(_verdict(t + 0.15, quality="no_contact", labels=("b_line", "b_line"), priority=2))
    assert not keep.keep(_verdict(t + 0.5, quality="no_contact", labels=("b_line", "b_line")))
    assert keep.keep(_verdict(t + 1.2, quality="no_contact", labels=("b_line", "b_line"))), "heartbeat"
    assert keep.keep(_verdict(t - 50, quality="no_contact", labels=("b_line", "b_line"))), "clock back"
    every = KeepPolicy("all")
    assert all(every.keep(_verdict(t)) for _ in range(3))


def test_a_looped_still_is_kept_once_while_it_says_the_same_urgent_or_not() -> None:
    from dataclasses import replace

    from edge.sync.recorder import KeepPolicy

    keep = KeepPolicy("changes", heartbeat_s=1.0)
    urgent = _verdict(1000.0, labels=("effusion",), priority=2)
    passes = [replace(urgent, content_id="ab12#0", frame_wall_time=1000.0 + k) for k in range(50)]
    assert [keep.keep(r) for r in passes].count(True) == 1, "the same image and verdict, once"
    changed = replace(passes[0], content_id="ab12#0", frame_wall_time=1100.0, findings=())
    assert keep.keep(changed), "the same image saying something else is kept"
    other = replace(passes[0], content_id="cd34#0", frame_wall_time=1101.0)
    assert keep.keep(other), "another image is another result"
    assert all(KeepPolicy("all").keep(r) for r in passes), "keep = all keeps what it is asked to"


def test_each_x_ray_exposure_is_kept_once_even_when_it_says_what_the_last_one_said() -> None:
    from dataclasses import replace

    from edge.sync.recorder import KeepPolicy
    from edge.xray_qa import Exposure

    keep = KeepPolicy("changes", heartbeat_s=1.0)
    on_target = Exposure(400.0, 400.0, 0.0, "computed", "file", "within", "exposure on target (DI +0.0)")
    film = replace(_verdict(1000.0), modality="CR", exposure=on_target)
    # Three films 0.2 s apart (a burst from the console), each shown twice (a redraw, a re-send).
    films = [replace(film, content_id=f"sop:1.2.{k}#0", frame_wall_time=1000.0 + 0.1 * n)
             for n, k in enumerate((1, 1, 2, 2, 3, 3))]  # fmt: skip
    assert [keep.keep(r) for r in films] == [True, False, True, False, True, False]
    under = replace(on_target, di=-3.2, band="under_far", repeat=True)
    assert keep.keep(replace(films[0], exposure=under, frame_wall_time=1000.7)), "the same film, re-judged"


def test_a_run_over_a_looped_urgent_still_keeps_it_once(tmp_path: Path) -> None:
    still = tmp_path / "still.png"
    first = cv2.VideoCapture(str(DEFAULT_CLIP))
    ok, image = first.read()
    first.release()
    assert ok
    cv2.imwrite(str(still), image)
    config = Config().with_overrides(
        source={"url": f"video://{still}?loop=1&fps=30"},
        display={"sinks": ["null"]},
        output={"dir": tmp_path / "runs"},
        outbox={"keep": "changes"},
    )
    report, _ = run(config, headless=True, max_frames=120)  # 4 s: four heartbeats' worth
    assert report["counters"]["results"] >= 100
    assert report["outbox"]["puts"]["stored"] <= 2  # its first verdict (and one more if it flickers)


def test_a_run_keeps_changes_and_counts_the_rest(tmp_path: Path) -> None:
    config = Config().with_overrides(
        source={"url": f"video://{DEFAULT_CLIP}?realtime=0"},
        display={"sinks": ["null"]},
        output={"dir": tmp_path / "runs"},
    )
    report, _ = run(config, headless=True, max_frames=60)
    n = report["counters"]["results"]
    puts = report["outbox"]["puts"]
    assert puts["stored"] + puts.get("unchanged", 0) == n
    assert 1 <= puts["stored"] <= n and report["outbox"]["queued"] == puts["stored"]


class _ScanSource:
    """Eight paced frames with a scan region, each a grey level of its own (25 * seq + 20)."""

    def __init__(self) -> None:
        self.info = SourceInfo(url="scan://", kind="scan", fps=50.0)
        self.i = 0

    def open(self) -> None: ...

    def close(self) -> None: ...

    @property
    def eof(self) -> bool:
        return self.i >= 8

    def read(self, timeout: float | None = None) -> Frame | None:
        if self.eof:
            return None
        time.sleep(0.02)
        image = np.full((120, 160, 3), 25 * self.i + 20, np.uint8)
        regions = (UltrasoundRegion(20, 20, 140, 110),)
        frame = Frame(image, self.i, time.monotonic_ns(), "scan", geometry=Geometry(regions=regions))
        self.i += 1
        return frame


def test_a_run_hands_the_recorder_each_results_own_frame_for_its_thumbnail(tmp_path: Path) -> None:
    config = Config().with_overrides(
        display={"sinks": ["null"]},
        output={"dir": tmp_path / "runs"},
        outbox={"keep": "all", "thumbnails": True, "thumbnail_min_priority": 0, "thumbnail_every_s": 0},
    )
    quality_only = config.models[:1]  # no detector boxes drawn over the scan region
    assert quality_only[0].name == "us-quality"
    report, _ = run(config.model_copy(update={"models": quality_only}), headless=True, source=_ScanSource())
    thumbs, n = report["outbox"]["thumbnails"], report["counters"]["results"]
    assert n > 0 and thumbs == {"made": n}, "every result drawn on a frame, none gone"
    with Outbox(Path(report["outbox"]["path"])) as outbox:
        messages = [json.loads(i.payload) for i in outbox.claim(100, live_share=0)]
    assert len(messages) == n
    for m in messages:
        jpeg = base64.b64decode(m["thumbnail"]["data_b64"])
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        h, w = img.shape
        scan = np.median(img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4])
        assert round((scan - 20) / 25) == m["frame_seq"], "the thumbnail shows the result's own frame"


def test_a_result_no_model_made_is_not_put_but_counted(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3") as outbox:
        rec = OutboxRecorder(outbox, Device("edge-x"))
        xray = Result(new_result_id(), 0, time.time(), "dicom:///cxr.dcm", "DX", None, (), (),
                      StageTimes(0, 1, 2, 3, 4), no_model=True)  # fmt: skip
        rec(_frame(), xray)
        rec(_frame(1), _result(seq=1))
        items = outbox.claim(10)
    assert rec.outcomes == {"no_model": 1, "stored": 1}, "an empty finding list would read as a negative"
    assert [json.loads(i.payload)["frame_seq"] for i in items] == [1]


def test_keep_changes_keeps_a_pattern_flag_coming_and_going() -> None:
    from dataclasses import replace

    from edge.clip_score import ClipScore
    from edge.sync.recorder import KeepPolicy

    def scored(wall: float, shown: float) -> Result:
        clip = ClipScore("b_line", shown, shown, 40, 2.9, 3.0, True, shown >= 3.0, "start")
        return replace(_verdict(wall, labels=("b_line",) * 3), clip_scores=(clip,))

    keep = KeepPolicy("changes", heartbeat_s=1.0)
    assert keep.keep(scored(1000.0, 2.8))
    assert not keep.keep(scored(1000.03, 2.9)), "the number moved, the verdict did not"
    assert keep.keep(scored(1000.06, 3.0)), "a B-pattern appears"
    assert not keep.keep(scored(1000.09, 3.1))
    assert keep.keep(scored(1000.12, 2.9)), "and goes"
