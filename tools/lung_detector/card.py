"""The lung detector's ``MODEL_CARD.md``, written from the files the earlier steps left.

Everything in the card is read from the dataset record, the quantization and pruning reports and
the metrics, so the card cannot disagree with the numbers it quotes; the tests write the committed
card again from the committed model folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tools.lung_detector.evaluate import NMS_IOU
from tools.lung_detector.recipe import Recipe
from tools.lung_detector.shipped import shipped
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


def _ci(v: dict[str, Any], key: str) -> str:  # "0.91 (0.80-0.99)"
    ci = v[f"{key}_ci"]
    lo = "n/a" if ci["low"] is None else f"{ci['low']:.2f}-{ci['high']:.2f}"
    val = v[key]
    return f"{'n/a' if val is None else f'{val:.2f}'} ({lo})"


def _loso_table(loso: dict[str, Any]) -> str:
    rows = [
        "| variant | clip AUC (95% CI) | sensitivity (95% CI) | specificity (95% CI) |",
        "| --- | --- | --- | --- |",
    ]
    named = [("consensus stage alone (no training)", loso["teacher"])]
    named += [(k, loso["variants"][k]) for k in VARIANT_NAMES]
    named += [(f"{k} + consensus stage", loso["variants"][f"{k}+consensus"]) for k in VARIANT_NAMES]
    for name, v in named:
        rows.append(f"| {name} | {_ci(v, 'auc')} | {_ci(v, 'sensitivity')} | {_ci(v, 'specificity')} |")
    return "\n".join(rows)


def clip_rule(loso: dict[str, Any], key: str) -> float:
    """The published rule's cut: the median of the ``key`` folds' cuts (the INT8 CPU form as the
    runtime runs it), each fixed on its training sources only (no clip set its own fold's cut)."""
    return float(np.median([f["threshold"] for f in loso["variants"][key]["folds"]]))


def _section(md: str, name: str) -> str:
    """The ``### name`` section of loso.md, without its heading."""
    for part in md.split("### ")[1:]:
        head, _, body = part.partition("\n")
        if head.strip() == name:
            return body.strip()
    raise KeyError(f"loso.md has no section {name!r}")


def model_card(r: Recipe, work: Path, metrics: dict[str, Any], wall_s: float | None) -> str:
    ds = json.loads((work / "dataset.json").read_text())
    quant = json.loads((work / "int8.json").read_text())
    loso = metrics["loso"]
    loso_md = (work / "loso.md").read_text()
    pr = metrics["pruning"]
    sp = metrics["speedup"]
    lat = metrics["latency"]
    ph = ds["phantom"]
    clips = ds["real"]["clips"]
    pos = sum(c["b_lines"] for c in clips)
    sources = sorted({c["source"] for c in clips})
    key = shipped("int8_cpu", r)
    rule = clip_rule(loso, key)
    headline = loso["variants"][key]
    forms = "\n".join(
        f"  - `{f['file']}`: activations {f['activations']}, biases {f['biases']}; kept float: "
        f"{f['chosen_float_nodes'] or 'none'} (tried, val mAP50: "
        f"{[(t['float_nodes'] or 'none', round(t['val_map50'], 4)) for t in f['tried']]}); "
        f"TensorRT parser problems: {len(f['tensorrt_problems'])}"
        for f in quant["forms"].values()
    )
    drops = metrics["loso_drops"]
    fp_, sp_, i8_, ic_ = (shipped(v, r) for v in ("fp32", "pruned", "int8", "int8_cpu"))
    v = loso["variants"]
    gains = [v[f"{k}+consensus"]["auc"] - v[k]["auc"] for k in VARIANT_NAMES]
    helped = (
        "held or rose"
        if min(gains) >= 0
        else f"changed by {min(gains) * 100:+.1f} to {max(gains) * 100:+.1f} points"
    )
    labels = {c["file"]: c["b_lines"] for c in clips}
    oof = loso["test_scores"]

    def mean_of(key: str, label: int) -> float:
        return float(np.mean([sc for f, sc in oof[key].items() if labels[f] == label]))

    pos_m, pos_c = mean_of("int8_cpu", 1), mean_of("int8_cpu+consensus", 1)
    neg_m, neg_c = mean_of("int8_cpu", 0), mean_of("int8_cpu+consensus", 0)
    n_frames = sum(c["frames"] for c in clips)
    left_out = n_frames - sum(c["frames_with_teacher_boxes"] for c in clips)
    return (
        f"""# {r.name} {r.version}: lung ultrasound finding detector

**Not a medical device. Not for diagnosis.** Trained on a software phantom and on {len(clips)} public
clips ({pos} with B-lines) from {len(sources)} sources, whose labels are per clip only; it has never been
validated prospectively on patients. It is guidance for a trained operator and a demonstration of the runtime.

## Headline: B-lines on real clips from sources the model never saw

Leave-one-source-out over the labelled `pocus_dev` clips: for each source (publication or site), a
model was trained by this same recipe (train, prune, fine-tune, quantize) on the phantom and on the
clips of the *other* sources only, and scored on the held-out source. A clip's score is what the runtime
shows as its clip score: the mean, over the clip's frames, of the confident B-line count (score >= the
fold's `review_below`, chosen on the phantom validation set). Each fold's clip threshold was fixed by
Youden's J on that fold's training clips before its test clips were scored.

{_loso_table(loso)}

As the runtime runs them, pruning changed the pooled AUC by {-drops[f"{sp_}_vs_{fp_}"] * 100:+.1f} points and
INT8 (CPU form) by {-drops[f"{ic_}_vs_{sp_}"] * 100:+.1f} points against the pruned model (portable
INT8: {-drops[f"{i8_}_vs_{sp_}"] * 100:+.1f}); the publish gate refuses a loss over
{r.evaluate.max_map_drop * 100:.0f} point on this figure and on the phantom mAP50.

**The consensus stage.** The manifest's `postprocess: {list(r.postprocess)}` makes the runtime add, on
each frame, the B-lines that the consensus detector (`edge/inference/blines.py`, the teacher below)
finds on the model's own scan-line input where the model boxed none, and counts one line boxed
twice by the model once; the rows "+ consensus stage" are what `edge run` shows. With it the
pooled AUC {helped} across the variants above. What it changes is the count on a source the model
never saw: the held-out B-line clips' mean clip score (INT8, CPU form) is {pos_m:.2f} from the model
alone and {pos_c:.2f} with the stage ({neg_m:.2f} and {neg_c:.2f} on the clips without B-lines). It
was put in the recipe after these figures had been seen, on these clips, so read the difference
between the rows as optimistic.

**Small numbers.** {pos} positive clips, {len(clips) - pos} negative, {len(sources)} sources; 31 negatives
come from one site, and 5 of the positives from one publication. The intervals resample clips (too
few sources to resample sources), so they are narrower than what a new site will see. The hidden external sets
(another scanner's patients) are the figure that counts; this one only says the method is not fitted
to one source.

Per source, INT8 CPU form (what `edge run` runs on a CPU):

{_section(loso_md, key)}

### The clinical rule

B-lines are called for a view when the runtime's clip score (the mean confident B-line count per frame
over the last 3 s at one probe position, `edge.inference.temporal`) is at least **{rule:.2f}**: the
median of the INT8 folds' thresholds above, each fixed without its test source. Three or more B-lines
(score >= 3) is shown as a B-pattern (Volpicelli et al., 2012). Headline sensitivity/specificity at the
folds' own thresholds: {_ci(headline, "sensitivity")} / {_ci(headline, "specificity")}.

## What it was trained on, and what it has not been shown to do

- Trained on: {ph["train"]["frames"]} domain-randomised phantom frames and the frames of {len(clips)}
  `pocus_dev` clips (CC BY; `DATA_SOURCE.md`), boxed by the physics-based consensus detector under
  the clip's label.
- Not shown: any figure on a scanner outside `pocus_dev`'s sources; counting accuracy on real frames
  (no real frame has a per-line label); consolidation and effusion on real frames (phantom boxes only,
  weak even there); children; linear-probe lung exams beyond the few here; frames with Doppler or
  heavy annotation overlays; prospective use.

## What it does

Boxes four findings on each lung ultrasound frame: `b_line`, `pleural_line`, `consolidation`, `effusion`.
Input (`input.view = "scanlines"`): the imaging sector found on the frame (`edge.inference.sector`:
the vendor's screen layout dropped), a convex fan resampled to scan-line coordinates (columns =
beams, rows = depth; a linear image cropped), {r.input_size}x{r.input_size}, brightness normalised
(a gain from the 99th percentile, capped), then `(x/255 - 0.5)/0.25`. In scan lines a B-line is a
vertical column from the pleural line down, on any probe. Output: YOLO layout
`[1, 4+{len(r.labels)}, {(r.input_size // 8) ** 2}]`, decoded by `edge/inference/tasks/detection.py`;
boxes are mapped back to the frame through the scan-line maps. Operating threshold
{r.evaluate.min_confidence}; NMS IoU {NMS_IOU}.

## Method

- **Why this way.** The 1.x detector was taught B-line boxes by the phantom alone, with real clips
  adding only a clip-level score; on another scanner's patients it was at chance (external clip AUC
  0.49) and boxed the pleural line of a white lung instead of its B-lines. Three changes target that:
  a scanner-independent input (sector, normalisation, scan lines), real frames labelled per line by a
  teacher that follows the consensus definition rather than the phantom's look, and a phantom
  randomised over what scanners differ in.
- **Teacher** (`edge/inference/blines.py`, the same code as the runtime's consensus stage): in scan
  lines, the pleural line is the brightest row band in the upper
  60%; below it, a B-line is a column run standing out of both the upper and the lower half of the
  lung field against a wide morphological opening (narrow, laser-like: the wide window between two
  rib shadows is not one), whose lower half keeps at least 60% of the upper half's level (no fading);
  a wide run whose lower half stays at 55% of the pleural line's level is confluent ("white lung")
  and counts as its width over a B-line's width. Its constants are proportions of the image, not
  fitted to labels, but they were set while looking at these clips; its own leave-one-source-out
  figure is in the table above.
- **Real labels** (`pseudo_labels.py`): a clip without B-lines gets none on any frame, whatever the
  teacher sees; a clip with B-lines gets the teacher's lines (frames where it finds none are left out,
  {left_out} of {n_frames}); every frame gets the teacher's pleural line.
- **Phantom** (`firmware_bridge.phantom`): random lung scenes (B-line count 0-8 and width,
  consolidation, effusion, convex and linear probes, depth, sliding, motion, operator events), exact
  boxes mapped into scan lines; train {ph["train"]["frames"]} frames randomised over gray map, gain, TGC,
  speckle size, resolution and noise (`randomise.py`), val {ph["val"]["frames"]} and test
  {ph["test"]["frames"]} clean, disjoint seeds.
- **Model**: a plain chain of 7 conv3x3+BN+ReLU layers to stride 8 (dilations 2 and 4 at the end for a
  tall receptive field), a 1x1 head per cell: box offset, log size and class scores; anchor-free.
- **Training** ({r.train.steps} steps of {r.train.batch} frames, {r.train.real_per_batch} of them real,
  positive and negative clips balanced; AdamW lr {r.train.lr}, cosine): focal loss on classes,
  GIoU + log-size L1 on boxes; augmented with zoom, shift, flips, gain/gamma and blur.
- **Pruning**: {pr["method"]}; MACs {pr["before"]["macs"] / 1e6:.1f} M -> {pr["after"]["macs"] / 1e6:.1f} M
  (**{pr["flops_removed"]:.1%} removed**), parameters {pr["before"]["params"]:,} -> {pr["after"]["params"]:,}
  ({pr["params_removed"]:.1%} removed); widths after {pr["widths_after"]};
  fine-tuned {r.prune.finetune_steps} steps.
- **INT8**: ONNX Runtime static quantization, Q/DQ format, {quant["weights"]} weights, convolutions and
  their ReLUs, {quant["calibration"]} calibration on {quant["calibration_frames"]} frames
  ({quant["calibration_source"]}). Two files from the one calibration: the portable one (what TensorRT
  builds INT8 engines from) and ONNX Runtime's CPU form (the manifest's `cpu_files`):
{forms}

## Phantom test set ({ph["test"]["frames"]} frames, unseen seeds, not randomised)

mAP50 (all-point AP per class at IoU 0.5, mean over classes); recall at the operating threshold.

{_variant_table(metrics, r.labels)}

Per-frame B-line count (confident: score >= {metrics["review_below"]}, the manifest's `review_below`, chosen
on the phantom validation set as the cut whose count is closest to the truth), against the truth:

{_count_table(metrics)}

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

INT8 (CPU form) vs unpruned FP32: **{sp["int8_cpu_vs_fp32"]:.2f}x**; vs pruned FP32
{sp["int8_cpu_vs_pruned"]:.2f}x; pruning alone {sp["pruned_vs_fp32"]:.2f}x. The portable INT8 file is
meant for TensorRT.

## Intended use and limits

- Intended: an aid to a trained operator counting B-lines per lung zone, gated by the us-quality model.
- A count is a trend over a few seconds, not a measure; confluent B-lines are counted by width.
- Consolidation and effusion boxes come from the phantom only: treat them as unreliable.
- Not a medical device; not validated prospectively, on children, or on other probes and presets.

## Reproduce

```
{REPRODUCE}
```
Deterministic for a seed (same files, same hashes) on the same machine and thread count.
{f"Whole recipe wall time on this machine: {wall_s / 60:.1f} min." if wall_s else ""}
"""
    )
