"""The parts plugged into the runtime say what they can do by their methods: HUD lines, alarms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import edge.runtime.app as app
from edge.config import DEFAULT_CLIP, Config
from edge.runtime.ports import AlarmReporter, HudLines, StatusReporter
from edge.sources import open_source
from edge.sources.probe import ProbeSource
from edge.sync.messages import Device
from edge.sync.outbox import Outbox
from edge.sync.recorder import OutboxRecorder


class Line:
    def __init__(self, text: str | None) -> None:
        self.text = text

    def hud_text(self) -> str | None:
        return self.text


def test_hud_lines_joins_what_is_there() -> None:
    assert HudLines([]).hud_text() is None
    joined = HudLines([Line("probe ok"), Line(None), Line("outbox 3 queued")])
    assert joined.hud_text() == "probe ok | outbox 3 queued"
    assert HudLines([Line(None)]).hud_text() is None
    assert isinstance(joined, StatusReporter)


def test_the_probe_has_an_alarm_and_a_line_the_outbox_a_line(tmp_path: Path) -> None:
    probe = open_source("serial:///dev/ttyNOPE0")  # not opened: nothing to alarm about
    assert isinstance(probe, ProbeSource)
    assert isinstance(probe, AlarmReporter) and isinstance(probe, StatusReporter)
    assert probe.status_text() is None
    with Outbox(tmp_path / "ob.sqlite3") as outbox:
        rec = OutboxRecorder(outbox, Device("edge-x"))
        assert isinstance(rec, StatusReporter) and not isinstance(rec, AlarmReporter)
        assert rec.hud_text() == "outbox 0 queued"
    video = open_source(f"video://{DEFAULT_CLIP}")
    assert not isinstance(video, StatusReporter) and not isinstance(video, AlarmReporter)


def test_the_uplink_is_a_status_line_and_no_alarm(tmp_path: Path) -> None:
    from edge.sync.uplink import Uplink

    assert "hud_text" in vars(Uplink) and "status_text" not in vars(Uplink)  # not mistaken for an alarm


def test_the_outbox_line_leaves_the_queue_to_the_uplinks_sync_line(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3") as outbox:
        rec = OutboxRecorder(outbox, Device("edge-x"))
        rec.queue_on_hud = False
        assert rec.hud_text() is None  # nothing to alarm about, and the sync line shows the queue


def test_the_run_wires_the_hud_from_what_each_part_can_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[dict[str, Any]] = []
    real = app.Pipeline

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(app, "Pipeline", spy)
    config = Config().with_overrides(
        source={"url": f"video://{DEFAULT_CLIP}?realtime=0"},
        display={"sinks": ["null"]},
        output={"dir": tmp_path / "runs"},
    )
    report, _ = app.run(config, headless=True, max_frames=5)
    (kw,) = built
    assert kw["alarm"] is None, "a video file has no alarm to raise"
    reporters = kw["status"].reporters
    assert [type(r).__name__ for r in reporters] == ["OutboxRecorder"]
    assert [type(h).__name__ for h in kw["result_handlers"]] == ["JsonlResultWriter", "OutboxRecorder"]
    assert kw["handler_frames"] == 0, "thumbnails off: no handler draws on a frame, none is held for them"
    assert report["pipeline"]["inference_policy_used"] == "every"
