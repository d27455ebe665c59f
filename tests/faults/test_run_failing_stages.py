"""Fault class: a stage that fails on every frame (issue item 5), through ``edge run`` as a user runs it.

Before: a model failing on every frame, or a video writer that cannot open, gave one traceback per
frame, exit 0, a report saying "completed", ``outputs.video`` naming a file never written, and no
HUD alarm. Now every stage counts its failures in a row: one traceback, then summaries; a HUD
alarm; past the [health] budget the run stops, exit 1, report ``exit: failed`` with the stage, the
count and the last error, and only what was written named. Each fault is real: an ONNX model that
fails inside ONNX Runtime on every real frame (its reshape depends on the image, so the blank
frame tried at load goes through), and a codec this OpenCV build cannot encode. Every wait is
bounded; no timing is asserted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.config import DEFAULT_CLIP
from tests.support.onnx_models import write_model_folder
from tests.support.paths import env_without, run_edge

CLIP = f"video://{DEFAULT_CLIP}?loop=1"


def failing_classifier(size: int = 32, classes: int = 2) -> onnx.ModelProto:
    """Gray [1,1,size,size] -> logits [1,C] on paper. A flat image (the blank frame the runtime
    tries at load) is reshaped to [1, -1] and goes through; any image with contrast, that is every
    real frame, is reshaped to [7, -1], which size*size values never fill: ONNX Runtime fails."""
    inits = [
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
        numpy_helper.from_array(np.array([6.0], np.float32), "six"),
        numpy_helper.from_array(np.array([1.0], np.float32), "one"),
        numpy_helper.from_array(np.array([-1], np.int64), "rest"),
        numpy_helper.from_array(np.zeros((1, classes), np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("ReduceMax", ["input"], ["mx"], keepdims=0),
        helper.make_node("ReduceMin", ["input"], ["mn"], keepdims=0),
        helper.make_node("Sub", ["mx", "mn"], ["span"]),
        helper.make_node("Reshape", ["span", "rest"], ["span1"]),
        helper.make_node("Greater", ["span1", "zero"], ["contrast"]),
        helper.make_node("Cast", ["contrast"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["c", "six"], ["c6"]),
        helper.make_node("Add", ["c6", "one"], ["rows_f"]),  # 1 for a flat image, 7 otherwise
        helper.make_node("Cast", ["rows_f"], ["rows"], to=TensorProto.INT64),
        helper.make_node("Concat", ["rows", "rest"], ["shape"], axis=0),
        helper.make_node("Reshape", ["input", "shape"], ["reshaped"]),
        helper.make_node("ReduceMean", ["reshaped"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["m0"]),
        helper.make_node("Add", ["bias", "m0"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "failing_cls",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def edge_run(tmp_path: Path, config: str, *args: str) -> tuple[int, str, dict]:
    (tmp_path / "edge.toml").write_text(config)
    env = env_without("NOTIFY_SOCKET", "WATCHDOG_USEC", "DISPLAY", "WAYLAND_DISPLAY")
    out = run_edge(
        "run", "--config", tmp_path / "edge.toml", "--headless", "--report", "r.json", *args,
        cwd=tmp_path, timeout=180, env=env,
    )  # fmt: skip
    report = json.loads((tmp_path / "r.json").read_text()) if (tmp_path / "r.json").exists() else {}
    return out.returncode, out.stderr, report


def test_a_model_failing_on_every_frame_alarms_then_stops_the_run(tmp_path: Path) -> None:
    folder = write_model_folder(
        tmp_path / "broken",
        failing_classifier(),
        {
            "name": "broken", "task": "classification",
            "input": {"name": "input", "shape": [1, 1, 32, 32], "color": "gray"},
            "outputs": [{"name": "logits", "kind": "logits"}], "labels": ["ok", "bad"], "ok_labels": ["ok"],
        },
    )  # fmt: skip
    config = (
        f'[source]\nurl = "{CLIP}"\n[inference]\nwarmup_runs = 0\n'
        f'[[models]]\nname = "broken"\npath = "{folder}"\n'
        '[display]\nsinks = ["video"]\n[output]\ndir = "runs"\n[outbox]\nenabled = false\n'
        "[health]\nmax_consecutive_failures = 40\n"
    )
    rc, stderr, report = edge_run(tmp_path, config)  # an endless source: the budget ends the run
    assert rc == 1, stderr
    assert report["exit"] == "failed"
    assert report["failure"]["stage"] == "inference" and report["failure"]["count"] == 40
    assert "cannot be reshaped" in report["failure"]["last_error"]
    assert report["reason"].startswith("inference failed 40 times in a row")
    assert "max_consecutive_failures = 40" in report["reason"]
    assert stderr.count("Traceback") == 1, "one traceback, then summaries: not one per frame"
    assert "inference keeps failing (3 in a row): HUD alarm raised" in stderr
    assert report["counters"]["inference_errors"] >= 40 and report["counters"]["inferred"] == 0
    # What was written is named, and holds the frames that carried the alarm.
    video = tmp_path / report["outputs"]["video"]
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n > 0 and report["outputs"]["results"] is None, "no result, no results file named"
    assert report["outputs"]["notes"]["results"] == "not written: no result reached it"
    assert not list(tmp_path.glob("runs/*/results.jsonl"))


def _h264_cannot_be_written(tmp_path: Path) -> bool:
    writer = cv2.VideoWriter(str(tmp_path / "probe.ts"), cv2.VideoWriter.fourcc(*"H264"), 25, (64, 48))
    ok = writer.isOpened()
    writer.release()
    return not ok


@pytest.mark.parametrize("frames", [None, 30])
def test_a_video_writer_that_cannot_open_fails_the_run_and_names_nothing_unwritten(
    tmp_path: Path, frames: int | None
) -> None:
    if not _h264_cannot_be_written(tmp_path):
        pytest.skip("this OpenCV build encodes H.264: the fault cannot be made with it here")
    config = (
        f'[source]\nurl = "{CLIP}"\n[display]\nsinks = ["video"]\nvideo_codec = "H264"\n'
        '[output]\ndir = "runs"\n[outbox]\nenabled = false\n'
    )
    args = ("--max-frames", str(frames)) if frames else ()
    rc, stderr, report = edge_run(tmp_path, config, *args)
    assert rc == 1, stderr
    assert report["exit"] == "failed" and report["failure"]["stage"] == "video"
    assert "'H264'" in report["failure"]["last_error"] and "did not open" in report["failure"]["last_error"]
    if frames is None:  # the default budget stopped an endless run
        assert report["failure"]["count"] == 150 and "max_consecutive_failures = 150" in report["reason"]
    else:  # a short run ended first: a stage that never once worked still fails it
        assert report["failure"]["why"] == "never succeeded" and report["counters"]["acquired"] == frames
    assert report["outputs"]["video"] is None
    assert report["outputs"]["notes"]["video"].startswith("not written: ")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not any(p.suffix in (".ts", ".mp4", ".mkv") for p in run_dir.iterdir()), "no empty video left"
    assert stderr.count("Traceback") == 1
    assert report["outputs"]["results"] and (tmp_path / report["outputs"]["results"]).exists()
    assert os.path.getsize(tmp_path / report["outputs"]["results"]) > 0, "inference went on meanwhile"
