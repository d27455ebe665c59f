"""Truth format (JSON), the scenario timeline, freeze, and input validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firmware_bridge.phantom import Scenario, Segment, frames, render, single


def test_truth_is_json_serialisable_and_boxes_agree_in_px_and_mm() -> None:
    img, truth = render(single("lung", b_line_count=2, effusion=True), 0.0)
    d = json.loads(json.dumps(truth.to_dict()))
    assert d["schema_version"] == 1 and d["preset"] == "lung" and d["events"] == []
    assert {"contact", "shadow_fraction", "gain_offset_db", "frozen", "geometry", "params"} <= d.keys()
    spacing = d["geometry"]["pixel_spacing_mm"]
    labels = [b["label"] for b in d["boxes"]]
    assert labels.count("b_line") == 2 and "pleural_line" in labels and "effusion" in labels
    for b in d["boxes"]:
        x0, y0, x1, y1 = b["px"]
        assert 0 <= x0 < x1 <= img.shape[1] - 1 and 0 <= y0 < y1 <= img.shape[0] - 1
        assert b["mm"] == pytest.approx([v * spacing for v in b["px"]], abs=0.02)


def test_scenario_json_round_trip_and_timeline() -> None:
    sc = Scenario(
        (
            Segment(0.0, 0.1, "lung", params={"b_line_count": 3}),
            Segment(0.1, 0.1, "bladder", events=("gain_up",)),
            Segment(0.3, 0.1, "abdomen", params={"free_fluid": True}),
        )
    )
    again = Scenario.from_json(sc.to_json())
    assert again == sc and again.duration_s == pytest.approx(0.4)
    got = [
        (t.preset, t.events, t.contact, t.count("b_line"), t.count("free_fluid"))
        for _, t in frames(again, fps=20, seed=1)
    ]
    assert len(got) == 8
    assert got[0] == ("lung", (), True, 3, 0)
    assert got[2] == ("bladder", ("gain_up",), True, 0, 0)
    assert got[4][2] is False  # a gap between segments: probe lifted
    assert got[6] == ("abdomen", (), True, 0, 1)


def test_freeze_repeats_the_same_frame() -> None:
    sc = Scenario((Segment(0.0, 0.1, "lung"), Segment(0.1, 0.1, "lung", events=("freeze",))))
    out = list(frames(sc, fps=30, seed=2))
    assert not np.array_equal(out[0][0], out[1][0])  # live: lung sliding, noise
    frozen = [img for img, t in out if t.frozen]
    assert len(frozen) == 3 and all(np.array_equal(frozen[0], f) for f in frozen)
    assert np.array_equal(frozen[0], out[2][0])  # the last live frame is what stays on screen


def test_render_matches_the_generator() -> None:
    sc = single("abdomen", duration_s=0.2)
    img, truth = render(sc, 0.1, fps=30, seed=3)
    ref = list(frames(sc, fps=30, seed=3))[3]
    assert truth.frame_index == 3 and np.array_equal(img, ref[0])


def test_unknown_preset_or_event_is_rejected() -> None:
    with pytest.raises(ValueError, match="preset"):
        Segment(0.0, 1.0, "heart")
    with pytest.raises(ValueError, match="event"):
        Segment(0.0, 1.0, "lung", events=("sneeze",))
