"""The probe sources: the virtual probe as its own process on a real pty, read through serial://."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge.errors import SourceError
from edge.sources import open_source
from edge.sources.probe import ProbeSource
from firmware_bridge import messages as m
from firmware_bridge.reassembly import AssembledFrame


def test_virtual_probe_frames_arrive_through_the_serial_path() -> None:
    src = open_source("probe+emu://?preset=lung&fps=30&seed=1")
    assert isinstance(src, ProbeSource)
    src.open()
    try:
        frames = []
        deadline = time.monotonic() + 20
        while len(frames) < 20 and time.monotonic() < deadline:
            f = src.read(0.5)
            if f is not None:
                frames.append(f)
        assert len(frames) == 20
        f = frames[-1]
        assert f.image.shape == (512, 512) and f.image.dtype == np.uint8
        assert f.image.mean() > 10, "a lung phantom, not a blank frame"
        assert f.geometry.pixel_spacing_mm is not None and f.geometry.sector == "convex"
        assert all(x.t_acquired_ns <= x.received_ns for x in frames)
        ids = [x.meta["frame_id"] for x in frames]
        assert ids == sorted(set(ids))
        # seq counts the probe's frames: a frame the probe dropped under load leaves a gap in both
        assert [x.seq - frames[0].seq for x in frames] == [i - ids[0] for i in ids]
        info = src.info
        assert info.kind == "probe+emu" and info.extra["probe_model"] and info.extra["protocol_version"] == 1
        assert info.extra["link"]["frames_delivered"] >= 20
        assert src.status_text() is None
        assert not src.eof
    finally:
        src.close()
    emulator = src._emulator
    assert emulator is None, "closing stops the virtual probe's process"


def test_a_missing_serial_device_is_named() -> None:
    src = open_source("serial:///dev/ttyNOPE0")
    with pytest.raises(SourceError, match="ttyNOPE0"):
        src.open()


def test_status_text_reports_a_disconnected_probe() -> None:
    src = open_source("serial:///dev/ttyNOPE0")
    assert isinstance(src, ProbeSource)
    assert src.status_text() is None  # not open: nothing to alarm about
    src._link = object()  # as if open
    src._state = "connected"
    src._on_event("disconnected", "read failed")
    assert src.status_text() == "probe disconnected" and src.disconnects == 1
    src._on_event("reconnecting", "attempt 1")
    src._on_event("connected", "serial://x")
    assert src.status_text() is None and src.disconnects == 1
    src._link = None


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("fps=0", "fps"),
        ("fps=-3", "fps"),
        ("fps=abc", "fps"),
        ("drop_chunk_p=1.5", "drop_chunk_p"),
        ("disconnect_at=-1", "disconnect_at"),
        ("stall_s=-2", "stall_s"),
        ("preset=heart", "preset"),
        ("seed=x", "seed"),
        ("fsp=30", "fsp"),
    ],
)
def test_bad_emulator_url_is_refused_naming_the_parameter(query: str, named: str) -> None:
    # Before: fps=0 started an emulator that could not run, reported as "multiple access on port?".
    with pytest.raises(SourceError, match=named) as info:
        open_source(f"probe+emu://?{query}")
    assert "multiple access" not in str(info.value)


def test_a_link_that_failed_for_good_is_a_source_error() -> None:
    class FailedLink:
        failed = "the probe reader thread died 6 times within 60 s (last: SystemExit)"

    src = open_source("serial:///dev/ttyNOPE0")
    assert isinstance(src, ProbeSource)
    src._link = FailedLink()
    with pytest.raises(SourceError, match="reader thread died"):
        src.read(0.01)
    src._link = None


def test_frame_ids_the_link_did_not_drop_count_as_dropped_in_the_probe() -> None:
    src = open_source("serial:///dev/no-such-probe")
    assert isinstance(src, ProbeSource)
    image = np.zeros((8, 8), np.uint8)
    for fid in (7, 8, 11, 12, 16):  # 9, 10, 13, 14, 15 never arrive
        src._on_frame(
            AssembledFrame(fid, fid * 33_000, image, 8, m.Geometry.CONVEX, 0.2, 0.2, 80.0, 60.0, 40.0)
        )
    assert src.frame_id_gaps == 5
    # No link here, so none of them was dropped by the link (lost chunks): all in the probe.
    assert src.info.extra["probe_dropped_frames"] == 5
    frames = list(iter(lambda: src.read(0), None))
    assert [f.meta["frame_id"] for f in frames] == [7, 8, 11, 12, 16]
    # seq keeps the gaps, so a result shows where frames went missing
    assert [f.seq for f in frames] == [0, 1, 4, 5, 9]
