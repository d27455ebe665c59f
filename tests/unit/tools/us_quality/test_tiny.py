"""The whole us-quality chain (--tiny) on a small synthetic data set written by the test.

It needs torch (the tools extra; CI installs it). The data set imitates pocus_dev's layout and
labels.csv so the real loading, splitting, training, quantization, evaluation and publishing code
runs end to end without the real clips, which users do not have.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed (tools extra: scripts/setup.sh --tools)",
)


def test_tiny_chain_writes_a_loadable_model_folder(tmp_path: Path, pocus_dir: Path) -> None:
    import onnxruntime as ort

    from edge.inference.manifest import verify_folder
    from tools.modelkit.quantize import tensorrt_qdq_problems
    from tools.us_quality.__main__ import main

    data = pocus_dir
    out = tmp_path / "us-quality"
    args = ["--tiny", "--data", str(data), "--out", str(out), "--work", str(tmp_path / "work")]
    assert main([*args, "--cache", str(tmp_path / "cache")]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["labels"] == ["diagnostic", "no_contact", "shadow", "gain_high", "gain_low"]
    for spec in man["files"].values():
        sess = ort.InferenceSession(str(out / spec["path"]), providers=["CPUExecutionProvider"])
        assert sess.get_outputs()[0].name == "logits" and sess.get_inputs()[0].shape == [1, 1, 128, 128]
    assert (out / "us-quality-int8.onnx").stat().st_size < (out / "us-quality-fp32.onnx").stat().st_size
    assert set(verify_folder(out)) == {"fp32", "int8", "int8-cpu"}, "the manifest's hashes match its files"
    assert man["version"] == "3.0.0"
    assert man["cpu_files"]["int8"]["path"] == "us-quality-int8-cpu.onnx"
    assert tensorrt_qdq_problems(out / man["files"]["int8"]["path"]) == [], "portable INT8 builds in TensorRT"
    assert tensorrt_qdq_problems(out / man["cpu_files"]["int8"]["path"]), "the CPU form is the asymmetric one"
    metrics = json.loads((out / "metrics.json").read_text())
    for form in ("fp32", "int8", "int8_cpu"):
        ph = metrics[form]["phantom"]
        assert set(ph["per_class"]) == set(man["labels"]) and ph["tour"]["by_stop"], form
    log = json.loads((out / "training_log.json").read_text())
    assert log["phantom_train_frames"] > 0 and log["train_per_class"] == [log["train_samples"] // 5] * 5
    split = json.loads((out / "split.json").read_text())["splits"]
    assert len(split["train"]) == 11, "every clip trains the published model"
    grouped = json.loads((out / "grouped_cv.json").read_text())
    assert len(grouped["folds"]) >= 2, "the stand-in's sites are held out in turn"
    for fold in grouped["folds"]:
        assert all(grouped["clips"][f]["fold"] == fold["name"] for f in fold["held_out"])
    assert "Headline: leave-one-source-out" in (out / "MODEL_CARD.md").read_text()
    for name in ("metrics.json", "MODEL_CARD.md", "DATA_SOURCE.md"):
        assert (out / name).exists()


def test_tiny_grouped_cv_holds_out_each_source(tmp_path: Path, pocus_dir: Path) -> None:
    """Two sources in a copy of the stand-in: each fold trains on one, scores the other in all forms."""
    import csv
    import shutil

    from tools.modelkit.pocus import load_labels
    from tools.us_quality import LABELS
    from tools.us_quality.data import load_clips
    from tools.us_quality.fit import FitConfig
    from tools.us_quality.grouped_cv import CVConfig, run
    from tools.us_quality.train import TrainConfig

    data = tmp_path / "data"
    shutil.copytree(pocus_dir, data)
    with (data / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, r in enumerate(rows):
        r["DOI"], r["URL (Video Name)"] = ("10.1/a" if i < 6 else "10.1/b"), ""
    with (data / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    clips = load_clips(data, [r.file for r in load_labels(data)], 3, tmp_path / "cache")
    for c in clips:
        c.frames, c.shadow = c.frames[:3], c.shadow[:3]
    train = TrainConfig(frames_per_clip=1, still_repeats=1, phantom_scenes=12, fit=FitConfig(steps=3))
    res = run(clips, CVConfig(train, test_frames_per_clip=1, calib_samples=10))
    assert [f["name"] for f in res["folds"]] == ["doi:10.1/a", "doi:10.1/b"]
    for fold in res["folds"]:
        for f in fold["held_out"]:
            assert res["clips"][f]["fold"] == fold["name"] == res["clips"][f]["source"]
        assert fold["train_samples"] == len(LABELS) * (len(clips) - len(fold["held_out"]))
    for row in res["clips"].values():
        for form in ("fp32", "int8", "int8_cpu"):
            assert 0 <= row[form]["untouched_diagnostic"]["as is"] <= row["frames"] == 3
            assert all(n == 1 for _, n in row[form]["rendered"].values())
            probs = row[form]["untouched_probs"]["as is"]  # every class's, for other decision rules
            assert len(probs) == 3 and all(len(p) == len(LABELS) and abs(sum(p) - 1) < 1e-3 for p in probs)
            assert len(row[form]["rendered_probs"]) == len(row[form]["rendered_top"])
