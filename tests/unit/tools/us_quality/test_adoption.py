"""The adoption rule for recipe changes, on the committed leave-one-source-out runs (no torch run)."""

from __future__ import annotations

import copy
import json

from tests.support.paths import MODELS
from tools.us_quality.adoption import judge, judge_untouched

FOLDER = MODELS / "us-quality"


def _run(name: str) -> dict:
    return json.loads((FOLDER / name).read_text())


def _charlotte_all_diagnostic(run: dict) -> dict:
    """The run with every untouched frame of the worst source called diagnostic, in every form."""
    out = copy.deepcopy(run)
    for row in out["clips"].values():
        if row["source"] == "site:charlotte":
            for form in ("fp32", "int8", "int8_cpu"):
                row[form]["untouched_fault_p"]["as is"] = [0.0] * row["frames"]
    return out


def test_the_scanline_trial_fails_on_each_point_the_card_names() -> None:
    v = judge(_run("grouped_cv_scanlines.json"), _run("grouped_cv_2.2.json"))
    assert not v.adopted
    assert [f.split(" ")[0] for f in v.failed] == ["mean", "worst", "shadow", "gain_low"]


def test_a_run_against_itself_is_not_an_improvement() -> None:
    base = _run("grouped_cv_2.2.json")
    v = judge(base, base)
    assert not v.adopted and v.failed == ["worst source 0.745 -> 0.745 (site:charlotte)"]


def test_more_good_frames_of_the_worst_source_and_nothing_lost_is_adopted() -> None:
    base = _run("grouped_cv_2.2.json")
    assert judge(_charlotte_all_diagnostic(base), base).adopted


def test_a_fault_recall_falling_by_more_than_two_points_blocks_it() -> None:
    base = _run("grouped_cv_2.2.json")
    worse = _charlotte_all_diagnostic(base)
    for row in worse["clips"].values():
        if row["source"] == "site:charlotte":  # every gain_low sample of it called diagnostic (4 -> 0)
            for form in ("fp32", "int8", "int8_cpu"):
                top = row[form]["rendered_top"]
                row[form]["rendered_top"] = [[y, 0 if y == 4 else k, p] for y, k, p in top]
    v = judge(worse, base)
    assert not v.adopted and v.failed[0].startswith("gain_low recall 0.983 -> ")


def test_the_rectangle_crop_trials_fail_on_gain_low() -> None:
    base = _run("grouped_cv_2.2.json")
    for name in ("grouped_cv_scanlines_rect.json", "grouped_cv_scanlines_rect_1600.json"):
        v = judge(_run(name), base)
        assert not v.adopted and any(f.startswith("gain_low recall 0.983 -> ") for f in v.failed), name


def test_the_diagnostic_floor_rule_trial_gives_back_the_good_frames_it_gained() -> None:
    from tools.us_quality import grouped_report as G

    run = _run("grouped_cv_scanlines_rect.json")
    assert G.has_all_probabilities(run)
    ruled = G.diagnostic_floor_rule(run, 0.5)
    v = judge(ruled, _run("grouped_cv_2.2.json"))
    assert not v.adopted and v.failed[0].startswith("mean of sources 0.939 -> ")
    assert G.recall(G.at_threshold(ruled, 0.5), "int8_cpu", "gain_low")["recall"] > 0.963  # that it won


def test_the_untouched_points_alone_ignore_fault_recall() -> None:
    base = _run("grouped_cv_2.2.json")
    worse = _charlotte_all_diagnostic(base)
    for row in worse["clips"].values():  # every rendered fault called diagnostic: not read here
        for form in ("fp32", "int8", "int8_cpu"):
            row[form]["rendered_top"] = [[y, 0, p] for y, _, p in row[form]["rendered_top"]]
    assert judge_untouched(worse, base).adopted
    assert not judge(worse, base).adopted
    v = judge_untouched(base, base)
    assert not v.adopted and v.failed == ["worst source 0.745 -> 0.745 (site:charlotte)"]


def test_the_label_mend_trials_get_the_verdicts_the_card_gives() -> None:
    previous = _run("grouped_cv_2.2.json")
    echo_control, echo = _run("grouped_cv_echo.json"), _run("grouped_cv_scanlines_rect_echo.json")
    assert judge(echo, echo_control).adopted
    v = judge(echo, previous)  # its rule also asked this, on renders drawn otherwise: it failed
    assert not v.adopted and [f.split(" ")[0] for f in v.failed] == ["gain_low"]
    control, adopted = _run("grouped_cv_echo_shadow.json"), _run("grouped_cv.json")
    assert judge(adopted, control).adopted and judge_untouched(adopted, previous).adopted
