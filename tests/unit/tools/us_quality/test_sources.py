"""Per-source scoring helpers: intervals, the darker renderings, a model folder run as the runtime runs it."""

from __future__ import annotations

import numpy as np

from tests.support.paths import MODELS
from tools.us_quality.sources import cluster_share, darker, folder_predictor, wilson


def test_wilson_interval_contains_the_share_and_stays_in_0_1() -> None:
    lo, hi = wilson(41, 41)
    assert 0.9 < lo < 1.0 and hi == 1.0
    lo, hi = wilson(0, 5)
    assert lo == 0.0 and 0.4 < hi < 0.6


def test_cluster_share_resamples_clips() -> None:
    one = cluster_share([np.ones(30, bool)])
    assert one["share"] == 1.0 and one["ci_kind"] == "wilson-frames"
    two = cluster_share([np.ones(30, bool), np.zeros(10, bool)])
    assert two["share"] == 0.75 and two["ci_kind"] == "bootstrap-clips"
    assert two["ci"][0] == 0.0 and two["ci"][1] == 1.0, "two very different clips: the interval spans both"


def test_darker_keeps_black_and_order() -> None:
    ramp = np.arange(256, dtype=np.uint8)[None, :]
    d = darker(ramp, 0.5, 1.4)[0]
    assert d[0] == 0 and d[-1] < 128 and (np.diff(d.astype(int)) >= 0).all()
    assert np.array_equal(darker(ramp, 1.0, 1.0), ramp)


def test_folder_predictor_runs_the_bundled_model_frame_by_frame() -> None:
    predict = folder_predictor(MODELS / "us-quality", "int8_cpu")
    frames = [np.full((200, 240), v, np.uint8) for v in (0, 90)]
    out = predict(iter(frames))
    assert out.shape == (2,) and out.dtype.kind == "i" and ((out >= 0) & (out < 5)).all()


def test_labels_are_the_runtimes_a_fault_under_the_floor_is_diagnostic() -> None:
    from tools.us_quality.evaluate import labels_of

    probs = np.array([[0.35, 0.45, 0.1, 0.05, 0.05], [0.2, 0.6, 0.1, 0.05, 0.05], [0.6, 0.1, 0.1, 0.1, 0.1]])
    logits = np.log(probs)
    assert labels_of(logits, 0.5).tolist() == [0, 1, 0]  # 0.45 < 0.5: not called
    assert labels_of(logits, 0.0).tolist() == [1, 1, 0]  # the arg-max
    assert labels_of(logits, 0.7).tolist() == [0, 0, 0]
