"""Step ``loso``: the headline figure, leave-one-source-out on the real clips with a model per fold.

For each source of the labelled pocus_dev clips (``tools.modelkit.grouped.source_of``), a model is
trained by this same recipe on the phantom and on the real clips of the *other* sources only, its
count cut (``review_below``) is chosen on the phantom validation set, and every clip is scored:
the mean, over its frames, of the confident B-line count (the runtime's clip score). The grouped
evaluation fixes each fold's clip threshold on that fold's training clips and applies it to the
held-out source unchanged. With ``prune_and_quantize`` each fold's model is also pruned,
fine-tuned and quantized (both INT8 forms) and scored the same way, so the publish gate can
compare the variants on this figure too.

work/loso/<fold>/...              each fold's models
work/loso.json, loso.md           the report per variant (GroupedReport.to_dict / markdown)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from edge.inference.blines import detect, line_boxes, with_consensus
from tools.lung_detector.dataset import Dataset, load
from tools.lung_detector.evaluate import OnnxDetector, count_threshold
from tools.lung_detector.recipe import Recipe
from tools.modelkit.grouped import (
    Fold,
    FoldScores,
    b_line_label,
    evaluate_grouped,
    fixed_scores,
    leave_one_source_out,
)
from tools.modelkit.pocus import EXCLUDED, load_labels

Log = Any


def clip_scores(
    model: OnnxDetector, ds: Dataset, files: list[str], b_line: int, cut: float, consensus: bool = False
) -> dict[str, float]:
    """Mean confident B-line count per frame for each clip of ``files``; with ``consensus``, as the
    runtime counts them under the manifest's ``postprocess: ["consensus_b_lines"]``."""
    out = {}
    for f in files:
        counts = []
        for im in ds.real.frames.images[ds.real.indices({f})]:
            d = model.detect(im, cut)
            boxes, scores, ids = d.boxes, d.scores, d.classes
            if consensus:
                boxes, scores, ids = with_consensus(boxes, scores, ids, im, b_line)
            counts.append(int(np.sum(ids == b_line)))
        out[f] = float(np.mean(counts))
    return out


def consensus_clip_score(images: np.ndarray) -> float:
    """Mean count per frame of the consensus stage alone, as the runtime shows its lines."""
    return float(np.mean([len(line_boxes(detect(im), *im.shape[:2])) for im in images]))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def val_map50(r: Recipe, ds: Dataset, path: Path) -> float:
    from tools.lung_detector.evaluate import detection_metrics

    det = OnnxDetector(path, len(r.labels))
    return float(detection_metrics(det, ds.phantom["val"], r.labels, r.evaluate.min_confidence)["map50"])


def fold_stamp(r: Recipe, ds_sha: str, clips: set[str]) -> str:
    """What a fold's models were made from: the recipe (less what does not shape a model: where it
    and the data were read from, the version, the runtime's classical stages), the real frames'
    hash (which stands for the data) and the training clips."""
    recipe = {k: v for k, v in r.to_dict().items() if k not in ("source", "version", "postprocess")}
    recipe["data"] = {k: v for k, v in recipe["data"].items() if k != "pocus_dir"}
    return json.dumps({"recipe": recipe, "dataset": ds_sha, "train": sorted(clips)}, sort_keys=True)


def _fold_models(
    r: Recipe, ds: Dataset, fold: Fold, fdir: Path, variants: tuple[str, ...], log: Log, ds_sha: str = ""
) -> dict:
    """The fold's models, trained on its training clips only (reused when the fold folder holds
    models of the same recipe, data set and training clips)."""

    from tools.lung_detector.model import Detector
    from tools.lung_detector.prune import prune_to
    from tools.lung_detector.quantize import quantize
    from tools.lung_detector.train import export_onnx, fit
    from tools.modelkit.training import set_determinism

    fdir.mkdir(parents=True, exist_ok=True)
    clips = {x.file for x in fold.train}
    files = {"fp32": "fp32.onnx", "pruned": "pruned.onnx", "int8": "int8.onnx", "int8_cpu": "int8-cpu.onnx"}
    stamp = fold_stamp(r, ds_sha, clips)
    same = (fdir / "stamp.json").exists() and (fdir / "stamp.json").read_text() == stamp
    if same and all((fdir / files[v]).exists() for v in variants):  # the same recipe, data and clips
        log(f"{fold.name}: reusing the models in {fdir}")
        return {v: fdir / files[v] for v in variants}
    set_determinism(r.seed, r.train.threads)
    model = Detector(len(r.labels))
    fit(model, ds, r, r.train.steps, r.train.lr, r.seed, log, tag=f"{fold.name} train", train_clips=clips)
    export_onnx(model, fdir / "fp32.onnx", r.input_size)
    paths = {"fp32": fdir / "fp32.onnx"}
    if set(variants) - {"fp32"}:
        prune_to(model, r.input_size, r.prune.flops_reduction, log)
        fit(
            model,
            ds,
            r,
            r.prune.finetune_steps,
            r.prune.lr,
            r.seed + 1,
            log,
            tag=f"{fold.name} finetune",
            train_clips=clips,
        )
        export_onnx(model, fdir / "pruned.onnx", r.input_size)
        paths["pruned"] = fdir / "pruned.onnx"
        quantize(
            fdir / "pruned.onnx",
            fdir,
            ds,
            r.quantize.calib_frames,
            r.seed,
            r.quantize.max_drop,
            lambda p: val_map50(r, ds, p),
            log,
            train_clips=clips,
        )
        paths |= {"int8": fdir / "int8.onnx", "int8_cpu": fdir / "int8-cpu.onnx"}
    (fdir / "stamp.json").write_text(stamp)
    return {k: v for k, v in paths.items() if k in variants}


def run(r: Recipe, work: Path, log: Log, variants: tuple[str, ...] = ("fp32",)) -> dict[str, Any]:
    ds = load(work / "dataset.npz")
    recs = [x for x in load_labels(r.pocus_dir()) if x.file not in EXCLUDED and b_line_label(x) is not None]
    missing = sorted({x.file for x in recs} - set(ds.real.files))
    if missing:
        raise ValueError(f"{work / 'dataset.npz'}: clips {missing} are labelled but not in the data set")
    b_line = r.labels.index("b_line")
    folds = leave_one_source_out(recs)
    ds_sha = json.loads((work / "dataset.json").read_text())["sha256"]["r_images"]
    per_fold: dict[str, dict[str, FoldScores]] = {}
    cuts: dict[str, dict[str, float]] = {}
    for fold in folds:
        paths = _fold_models(r, ds, fold, work / "loso" / _slug(fold.name), variants, log, ds_sha)
        per_fold[fold.name], cuts[fold.name] = {}, {}
        for name, path in paths.items():
            det = OnnxDetector(path, len(r.labels))
            cut = float(count_threshold([det], ds.phantom["val"], b_line, r.evaluate.min_confidence)["cut"])
            cuts[fold.name][name] = cut
            for key, consensus in ((name, False), (f"{name}+consensus", True)):
                train = clip_scores(det, ds, [x.file for x in fold.train], b_line, cut, consensus)
                test = clip_scores(det, ds, [x.file for x in fold.test], b_line, cut, consensus)
                per_fold[fold.name][key] = FoldScores(train=train, test=test)
                log(
                    f"{fold.name} {key}: test "
                    + ", ".join(f"{Path(k).name} {v:.2f}" for k, v in test.items())
                )
    # The consensus stage alone (the teacher), on the same inputs and counted as the runtime shows
    # its lines: it learns nothing, so every clip is scored once.
    images = ds.real.frames.images
    teacher = {f: consensus_clip_score(images[ds.real.indices({f})]) for f in ds.real.files}
    out: dict[str, Any] = {"variants": {}, "count_cuts": cuts, "test_scores": {}}
    t_report = evaluate_grouped(folds, fixed_scores(teacher), b_line_label)
    out["teacher"] = t_report.to_dict()
    md = [f"### teacher (the consensus stage alone, no training)\n\n{t_report.markdown()}"]
    for name in [*variants, *(f"{v}+consensus" for v in variants)]:
        report = evaluate_grouped(folds, lambda f, n=name: per_fold[f.name][n], b_line_label)  # type: ignore[misc]
        out["variants"][name] = report.to_dict()
        out["test_scores"][name] = {k: v for f in folds for k, v in per_fold[f.name][name].test.items()}
        md.append(f"### {name}\n\n{report.markdown()}")
        log(f"LOSO {name}: AUC {report.to_dict().get('auc')}")
    (work / "loso.json").write_text(json.dumps(out, indent=2) + "\n")
    (work / "loso.md").write_text("\n\n".join(md) + "\n")
    return out
