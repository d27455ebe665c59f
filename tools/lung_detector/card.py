"""The lung detector's ``MODEL_CARD.md``, written from the files the earlier steps left.

Everything in the card is read from the dataset record, the quantization and pruning reports and
the metrics, so the card cannot disagree with the numbers it quotes; the tests write the committed
card again from the committed model folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tools.lung_detector.evaluate import NMS_IOU
from tools.lung_detector.recipe import Recipe
from tools.modelkit.cards import figure

REPRODUCE = ".venv/bin/python -m tools.lung_detector all --recipe tools/lung_detector/recipe.toml"
VARIANT_NAMES = ("fp32", "pruned", "int8", "int8_cpu")


def _variant_table(metrics: dict[str, Any], labels: tuple[str, ...]) -> str:
    v = metrics["variants"]
    head = "| variant | mAP50 | " + " | ".join(f"{lab} AP50 / recall" for lab in labels) + " |"
    rows = [head, "| --- " * (len(labels) + 2) + "|"]
    for name in VARIANT_NAMES:
        det = v[name]["phantom_test"]
        cells = [
            f"{figure(det['per_class'][lab]['ap50'])} / {figure(det['per_class'][lab]['recall'])}"
            for lab in labels
        ]
        rows.append(f"| {name} | **{det['map50']:.4f}** | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _count_table(metrics: dict[str, Any]) -> str:
    rows = [
        "| variant | exact | within 1 | mean abs error | mean error |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in VARIANT_NAMES:
        c = metrics["variants"][name]["b_line_count"]
        rows.append(
            f"| {name} | {c['exact']:.3f} | {c['within_one']:.3f} | {c['mean_abs_error']:.2f} | "
            f"{c['mean_error']:+.2f} |"
        )
    by = metrics["variants"]["int8_cpu"]["b_line_count"]["by_true_count"]
    rows += [
        "",
        "Mean count shown (INT8, CPU form) by true count: "
        + ", ".join(
            f"{k}: {v['mean_predicted']:.2f} ({v['frames']} frames)"
            for k, v in sorted(by.items(), key=lambda kv: int(kv[0]))
        ),
    ]
    return "\n".join(rows)


def _clip_table(metrics: dict[str, Any]) -> str:
    rows = [
        "| variant | AUC | sensitivity | specificity | train-clip AUC | cut fitted on train clips: "
        "cut / sensitivity / specificity |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in VARIANT_NAMES:
        c = metrics["variants"][name]["real_clips"]
        f = c["train_fitted_cut"]
        rows.append(
            f"| {name} | {figure(c['auc'])} | {figure(c['sensitivity'])} | {figure(c['specificity'])} | "
            f"{figure(c['train_auc'])} | {f['threshold_mean_count']:.2f} / {figure(f['sensitivity'])} / "
            f"{figure(f['specificity'])} |"
        )
    per = metrics["variants"]["int8_cpu"]["real_clips"]["clips"]
    rows += [
        "",
        "Per test clip (INT8, CPU form: what `edge run` runs on this machine):",
        "",
        "| clip | B-lines (label) | frames | mean B-lines/frame | called |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    rows += [
        f"| `{c['file']}` | {c['b_lines']} | {c['frames']} | {c['mean_count']:.2f} | "
        f"{'B-lines' if c['predicted'] else 'none'} |"
        for c in per
    ]
    return "\n".join(rows)


def model_card(r: Recipe, work: Path, metrics: dict[str, Any], wall_s: float | None) -> str:
    ds = json.loads((work / "dataset.json").read_text())
    quant = json.loads((work / "int8.json").read_text())
    pr = metrics["pruning"]
    sp = metrics["speedup"]
    review_note = (
        ",\nchosen on the phantom validation set as the cut whose count is closest to the truth"
        if "count_threshold" in metrics
        else ""
    )
    lat = metrics["latency"]
    clip = metrics["variants"]["int8_cpu"]["real_clips"]
    ph = ds["phantom"]
    test_files = [c["file"] for c in ds["real"]["test"]]
    forms = "\n".join(
        f"  - `{f['file']}`: activations {f['activations']}, biases {f['biases']}; kept float: "
        f"{f['chosen_float_nodes'] or 'none'} (tried, val mAP50: "
        f"{[(t['float_nodes'] or 'none', round(t['val_map50'], 4)) for t in f['tried']]}); "
        f"TensorRT parser problems: {len(f['tensorrt_problems'])}"
        for f in quant["forms"].values()
    )
    train_files = [c["file"] for c in ds["real"]["train"]]
    return (
        f"""# {r.name} {r.version}: lung ultrasound finding detector

**Not a medical device. Not for diagnosis.** Trained on a software phantom and on {len(train_files)} public
clips with clip-level labels only; it has never been validated on patients. It is guidance for a
trained operator and a demonstration of the runtime.

## What it does

Boxes four findings on each lung ultrasound frame: `b_line`, `pleural_line`, `consolidation`,
`effusion`. The runtime's overlay counts the B-lines per frame. Input: one grey frame letterboxed to
{r.input_size}x{r.input_size}, `(x/255 - 0.5)/0.25`. Output: YOLO layout
`[1, 4+{len(r.labels)}, {(r.input_size // 8) ** 2}]` (cx, cy, w, h in input pixels, one sigmoid score
per class), which `edge/inference/tasks/detection.py` decodes.
Operating threshold {r.evaluate.min_confidence}; NMS IoU {NMS_IOU}.

## Method

- **Data** (`dataset.json` lists everything): phantom frames rendered by `firmware_bridge.phantom` from
  random lung scenes (B-line count 0-8 and width, consolidation, effusion, convex and linear probes,
  depth, lung sliding, probe motion, and operator events: rib shadow, partial contact, gain up/down,
  motion blur, probe lifted), with exact boxes from the phantom's ground truth:
  train {ph["train"]["frames"]}, val {ph["val"]["frames"]}, test {ph["test"]["frames"]} frames, from disjoint
  seeds. Boxes per label (train): {ph["train"]["boxes_per_label"]}.
  Real frames: `pocus_dev` clips whose B-line label is known, split by patient and stratified by
  that label ({ds["real"]["split_rule"]}); {len(train_files)} clips train, {len(test_files)} test.
- **Model**: a plain chain of 7 conv3x3+BN+ReLU layers to stride 8 (dilations 2 and 4 at the end for a
  tall receptive field), a 1x1 head per cell: box offset, log size and class scores; anchor-free.
- **Training** ({r.train.steps} steps of {r.train.batch} frames, AdamW lr {r.train.lr}, cosine): phantom
  frames with focal loss on classes and GIoU + log-size L1 on boxes (cells near a box centre are its
  positives); real frames, {r.train.real_per_batch} per batch, teach the B-line score from the clip label
  alone: no B-line anywhere on a negative clip's frame (focal loss on every cell), at least one on a
  positive clip's frame (multiple-instance loss on the frame's highest B-line score). Augmented with
  zoom, shift, flips, gain/gamma and blur.
- **Pruning**: {pr["method"]}; MACs {pr["before"]["macs"] / 1e6:.1f} M -> {pr["after"]["macs"] / 1e6:.1f} M
  (**{pr["flops_removed"]:.1%} removed**), parameters {pr["before"]["params"]:,} -> {pr["after"]["params"]:,}
  ({pr["params_removed"]:.1%} removed); widths after {pr["widths_after"]};
  fine-tuned {r.prune.finetune_steps} steps.
- **INT8**: ONNX Runtime static quantization, Q/DQ format, {quant["weights"]} weights,
  convolutions and their ReLUs, {quant["calibration"]} calibration on {quant["calibration_frames"]}
  frames of the training split. Two files from the one calibration: the portable one (symmetric
  int8 activations, float biases: what TensorRT builds INT8 engines from) and ONNX Runtime's CPU
  form (asymmetric uint8 activations, whose ReLUs fold into the convolutions; the manifest's
  `cpu_files`, which the runtime picks when ONNX Runtime runs on the CPU):
{forms}

## Phantom test set ({ph["test"]["frames"]} frames, unseen seeds)

mAP50 (all-point AP per class at IoU 0.5, mean over classes); recall at the operating threshold.

{_variant_table(metrics, r.labels)}

mAP50 change: pruned vs FP32 **{-metrics["drops"]["pruned_vs_fp32"] * 100:+.2f} pt**, INT8 vs pruned
**{-metrics["drops"]["int8_vs_pruned"] * 100:+.2f} pt**,
INT8 vs FP32 {-metrics["drops"]["int8_vs_fp32"] * 100:+.2f} pt.
The publish gate refuses a drop over {r.evaluate.max_map_drop * 100:.0f} point for pruning or for INT8.

Per-frame B-line count as the overlay shows it (confident detections: score >= {metrics["review_below"]},
the manifest's `review_below`{review_note}; uncertain ones are shown apart as "+N?"), against
the phantom's truth on the same frames:

{_count_table(metrics)}

## Real clips held out by patient ({clip["positives"]} with B-lines, {clip["negatives"]} without)

{clip["method"]}. With so few clips every figure has a wide margin of error: one clip moves
sensitivity by {1 / max(clip["positives"], 1):.0%}. The training clips taught the B-line score, so a cut
fitted on them is biased (shown for comparison, not used). Labels are the source data set's, per clip.
{r.evaluate.clip_threshold_note}

{_clip_table(metrics)}

## Latency (ONNX Runtime {lat["environment"]["onnxruntime"]}, CPU `{lat["environment"]["machine"]}`, 1 thread)

Single-frame `session.run`, {lat["int8"]["runs"]} runs each, variants interleaved in one process:

| variant | median ms | p99 ms | bytes |
| --- | ---: | ---: | ---: |
"""
        + "\n".join(
            f"| {k} | {lat[k]['median_ms']:.2f} | {lat[k]['p99_ms']:.2f} | {lat[k]['bytes']:,} |"
            for k in VARIANT_NAMES
        )
        + f"""

On this CPU the INT8 model as the runtime runs it (CPU form) is **{sp["int8_cpu_vs_fp32"]:.2f}x** faster than
the unpruned FP32 model and {sp["int8_cpu_vs_pruned"]:.2f}x faster than the pruned FP32 model; pruning
alone gives {sp["pruned_vs_fp32"]:.2f}x. The portable (TensorRT) INT8 file runs
{sp["int8_vs_pruned"]:.2f}x the pruned FP32 speed under ONNX Runtime on this CPU: it is meant for TensorRT.

## Intended use and limits

- Intended: a demonstration and starting point for lung POCUS guidance on the scanner edge runtime;
  counting B-lines as an aid to a trained operator, gated by the us-quality model (paused on
  frames it does not call diagnostic).
- The boxes were learnt from a phantom. Real B-lines, pleural lines, consolidations and effusions vary
  far more; the real clips taught only the B-line score and only through clip labels, so box
  positions on real frames are the phantom's notion of them.
- Consolidation and effusion are weak even on the phantom (AP50 above, from few training boxes)
  and were never labelled on real frames: treat those boxes as unreliable.
- Real B-lines are counted generously: confluent B-lines ("white lung") give many boxes, or none
  where the whole field is bright (`Vir_whitelung_h1n1` above). A count is a trend, not a measure.
- Not validated on patients, children, other probes or presets. Not a medical device.

## Reproduce

```
{REPRODUCE}
```
Deterministic for a seed (same files, same hashes) on the same machine and thread count.
{f"Whole recipe wall time on this machine: {wall_s / 60:.1f} min." if wall_s else ""}
"""
    )
