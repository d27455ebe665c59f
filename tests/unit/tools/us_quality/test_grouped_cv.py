"""Leave-one-source-out folds of the us-quality recipe, and the figures read from a run (no torch run)."""

from __future__ import annotations

import numpy as np
import pytest

# grouped_cv trains (torch): without the tools set (scripts/setup.sh --tools) the module cannot load.
pytest.importorskip("torch", reason="torch is not installed (tools extra: scripts/setup.sh --tools)")

from tools.modelkit.grouped import source_of
from tools.modelkit.pocus import ClipRecord
from tools.us_quality import LABELS
from tools.us_quality.data import ClipData
from tools.us_quality.grouped_cv import MIN_SOURCE_FRAMES, folds
from tools.us_quality.grouped_report import frame_share, int8_gap, pooled_untouched, recall, untouched


def _clip(name: str, doi: str, frames: int) -> ClipData:
    rec = ClipRecord(f"convex/{name}.mp4", name, "regular", "convex", "video", "", "", doi, "", {})
    return ClipData(
        rec, np.zeros((frames, 8, 8), np.uint8), np.ones((8, 8), bool), np.zeros(frames, np.float32)
    )


def _clips() -> list[ClipData]:
    return [
        _clip("a1", "10.1/a", 40),
        _clip("a2", "10.1/a", 30),
        _clip("b1", "10.1/b", 50),
        _clip("c1", "10.1/c", 1),
        _clip("d1", "10.1/d", 2),
    ]


def test_a_source_is_never_in_its_own_folds_training_data() -> None:
    clips = _clips()
    fs = folds(clips)
    held_all = [i for _, held in fs for i in held]
    assert sorted(held_all) == list(range(len(clips))), "every clip is held out exactly once"
    for name, held in fs:
        test_sources = {source_of(clips[i].record) for i in held}
        train_sources = {source_of(c.record) for i, c in enumerate(clips) if i not in held}
        assert not test_sources & train_sources, name


def test_small_sources_are_held_out_together() -> None:
    clips = _clips()
    fs = dict(folds(clips))
    small = [name for name in fs if name.startswith("small sources")]
    assert len(small) == 1 and sorted(fs[small[0]]) == [3, 4]
    assert all(
        sum(len(clips[i].frames) for i in held) >= MIN_SOURCE_FRAMES
        for n, held in fs.items()
        if n not in small
    )


def test_one_source_gives_no_folds() -> None:
    assert folds([_clip("a1", "10.1/a", 40), _clip("a2", "10.1/a", 30)]) == []


def _row(source: str, frames: int, diag: dict[str, int], rendered: dict[str, list[int]]) -> dict:
    form = {
        "untouched_diagnostic": {"as is": diag["as is"], "x0.5": diag["as is"], "x0.6 g1.4": diag["as is"]},
        "rendered": rendered,
    }
    return {"source": source, "frames": frames, "fp32": form, "int8": form, "int8_cpu": form}


def test_figures_read_from_a_run() -> None:
    full = {lab: [4, 4] for lab in LABELS}
    half = {lab: [2, 4] for lab in LABELS}
    res = {
        "clips": {
            "a1": _row("A", 10, {"as is": 10}, full),
            "a2": _row("A", 10, {"as is": 8}, full),
            "b1": _row("B", 20, {"as is": 10}, half),
        }
    }
    u = untouched(res, "fp32")
    assert u["A"]["share"] == 0.9 and u["A"]["ci_kind"] == "bootstrap-clips"
    assert u["B"]["share"] == 0.5 and u["B"]["ci_kind"] == "wilson-frames"
    assert u["B"]["ci"][0] < 0.5 < u["B"]["ci"][1]
    p = pooled_untouched(res, "fp32")
    assert p["mean_of_sources"] == 0.7 and p["worst_source"] == "B" and p["worst"] == 0.5
    r = recall(res, "fp32", "shadow")
    assert r["recall"] == 10 / 12 and r["worst_source"] == "B" and r["worst"] == 0.5
    assert r["ci"][0] <= r["recall"] <= r["ci"][1]
    assert int8_gap(res) == {"int8": 0.0, "int8_cpu": 0.0}


def _prob_row(source: str, fault_p: list[float], rendered: list[list[float]]) -> dict:
    form = {"untouched_fault_p": {"as is": fault_p}, "rendered_top": rendered}
    return {"source": source, "frames": len(fault_p), "fp32": form, "int8": form, "int8_cpu": form}


def test_operating_points_from_the_runs_probabilities() -> None:
    from tools.us_quality.grouped_report import at_operating_point, has_probabilities

    shadow = LABELS.index("shadow")
    res = {
        "clips": {
            # 4 untouched frames: 2 called diagnostic (0), faults called at 0.55 and 0.9
            "a1": _prob_row(
                "A", [0.0, 0.55, 0.9, 0.0], [[shadow, shadow, 0.6], [shadow, 0, 0.8], [0, 0, 0.9]]
            ),
            "b1": _prob_row("B", [0.0, 0.0], [[shadow, shadow, 0.95]]),
        }
    }
    assert has_probabilities(res) and not has_probabilities({"clips": {"x": _row("A", 1, {"as is": 1}, {})}})
    shares, recalls = at_operating_point(res, "int8_cpu", 0.0)  # the arg-max
    assert shares == {"A": 0.5, "B": 1.0} and recalls["shadow"] == 2 / 3
    shares, recalls = at_operating_point(res, "int8_cpu", 0.7)  # the 0.55 fault is no longer called
    assert shares == {"A": 0.75, "B": 1.0} and recalls["shadow"] == 1 / 3  # nor the 0.6 shadow
    assert at_operating_point(res, "int8_cpu", 0.95)[0]["A"] == 1.0


def test_a_run_keeps_per_frame_the_probability_of_the_fault_it_calls() -> None:
    from tools.us_quality.evaluate import softmax
    from tools.us_quality.grouped_cv import fault_p

    probs = softmax(np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]], np.float32))
    assert np.allclose(probs.sum(1), 1.0)
    got = fault_p(probs)
    assert got[0] == 0.0 and got[1] == round(float(probs[1, 1]), 4)  # diagnostic: 0; a fault: its p


def test_a_runs_figures_at_the_runtimes_fault_floor() -> None:
    from tools.us_quality.grouped_report import at_threshold

    shadow = LABELS.index("shadow")
    row = _prob_row("A", [0.0, 0.55, 0.9, 0.0], [[shadow, shadow, 0.6], [shadow, 0, 0.8], [0, shadow, 0.4]])
    res = {"clips": {"a1": row}}
    at_max = at_threshold(res, 0.0)["clips"]["a1"]["int8_cpu"]  # the arg-max, from the same numbers
    assert at_max["untouched_diagnostic"]["as is"] == 2 and at_max["rendered"]["shadow"] == [1, 2]
    r = at_threshold(res, 0.7)["clips"]["a1"]["int8_cpu"]
    assert r["untouched_diagnostic"]["as is"] == 3  # 0, 0.55, 0: under 0.7
    assert r["rendered"]["shadow"] == [0, 2] and r["rendered"]["diagnostic"] == [1, 1]
    n = len(LABELS)
    assert r["rendered_confusion"][shadow * n + 0] == 2 and sum(r["rendered_confusion"]) == 3
    assert untouched(at_threshold(res, 0.7), "fp32")["A"]["share"] == 0.75


def test_the_diagnostic_floor_rule_calls_a_fault_when_diagnostic_is_unlikely() -> None:
    from tools.us_quality.grouped_report import at_threshold, diagnostic_floor_rule

    shadow, low = LABELS.index("shadow"), LABELS.index("gain_low")
    unsure = [0.3, 0.0, 0.35, 0.0, 0.35]  # no fault at 0.5, yet diagnostic unlikely: a fault
    sure = [0.9, 0.0, 0.1, 0.0, 0.0]
    forms = {
        f: {
            "untouched_probs": {"as is": [unsure, sure]},
            "rendered_probs": [unsure, sure, [0.1, 0.0, 0.2, 0.0, 0.7]],
            "rendered_top": [[low, shadow, 0.35], [0, 0, 0.9], [low, low, 0.7]],
            "untouched_fault_p": {"as is": [0.35, 0.0]},
        }
        for f in ("fp32", "int8", "int8_cpu")
    }
    res = {"clips": {"a1": {"source": "A", "frames": 2, **forms}}}
    old = at_threshold(res, 0.5)["clips"]["a1"]["int8_cpu"]
    assert old["untouched_diagnostic"]["as is"] == 2 and old["rendered"]["gain_low"] == [1, 2]
    new = at_threshold(diagnostic_floor_rule(res, 0.5), 0.5)["clips"]["a1"]["int8_cpu"]
    assert new["untouched_diagnostic"]["as is"] == 1  # the unsure frame is now a fault
    assert new["rendered"]["gain_low"] == [1, 2]  # named shadow (the first most likely fault): caught
    assert new["rendered_confusion"][low * len(LABELS) + shadow] == 1


def test_frame_share_pools_frames_so_a_big_source_weighs_more() -> None:
    def row(frames: int, ok: int) -> dict:
        return {"frames": frames, "int8_cpu": {"untouched_diagnostic": {"as is": ok}}}

    res = {"clips": {"big.mp4": row(90, 90), "still.png": row(10, 0)}}
    assert frame_share(res) == 0.9  # the mean of the two sources would be 0.5
    assert np.isnan(frame_share({"clips": {}}))
