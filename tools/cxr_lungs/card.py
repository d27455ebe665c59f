"""MODEL_CARD.md and DATA_SOURCE.md of models/cxr-lungs, every figure read from cv.json / build.json."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

from tools.cxr_lungs.data import LABELS, Films
from tools.modelkit.reflow import reflow

NAMES = {
    "fp32": "FP32",
    "pruned": "pruned (FP32)",
    "int8": "INT8 portable (TensorRT Q/DQ)",
    "int8-cpu": "INT8 CPU form",
}


def _ci(d: dict[str, Any]) -> str:
    return f"{d['value']:.3f} ({d['low']:.3f}-{d['high']:.3f})"


def figures_table(cv: dict[str, Any]) -> str:
    head = "| variant | mAP50 | " + " | ".join(f"{lab} AP50 | {lab} mean IoU" for lab in LABELS) + " |"
    rows = [head, "|" + " --- |" * (2 + 2 * len(LABELS))]
    for v, s in cv["variants"].items():
        cells = [_ci(s["map50"])]
        for lab in LABELS:
            pc = s["per_class"][lab]
            cells += [_ci(pc["ap50"]), _ci(pc["mean_iou"])]
        rows.append(f"| {NAMES.get(v, v)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def stress_table(stress: dict[str, Any] | None) -> str:
    if not stress:
        return "Not measured in this run."
    head = "| film | " + " | ".join(f"{lab} IoU | {lab} box at an edge (truth)" for lab in LABELS)
    rows = [head + " | field cut off the film, still boxed |", "|" + " --- |" * (2 + 2 * len(LABELS))]
    for name, per in stress["changes"].items():
        cells = []
        for lab in LABELS:
            r = per[lab]
            cells += [
                _f(r["mean_iou"], ".3f"),
                f"{_f(r['box_at_edge'], '.0%')} ({_f(r['truth_at_edge'], '.0%')})",
            ]
        cut = [
            f"{lab} {per[lab]['cut_off_still_reported']:.0%} of {per[lab]['cut_off_films']}"
            for lab in LABELS
            if per[lab]["cut_off_films"]
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {', '.join(cut) or '-'} |")
    return "\n".join(rows)


def model_card(
    cv: dict[str, Any], build: dict[str, Any], films: Films, stress: dict[str, Any] | None = None
) -> str:
    fp = cv["variants"]["fp32"]
    views = Counter(films.views)
    q = build["quantize"]["forms"]
    drops = ", ".join(f"{k.replace('_vs_fp32', '')} {v * 100:+.2f}" for k, v in cv["drops"].items())
    iou_drops = ", ".join(f"{k.replace('_vs_fp32', '')} {v * 100:+.2f}" for k, v in cv["iou_drops"].items())
    sched = build["schedule"]
    tune = sched["finetune_steps"]
    kept = {f: q[f]["chosen_float_nodes"] or "none" for f in ("int8", "int8-cpu")}
    flops = build["prune"]["flops_removed"]
    macs = build["prune"]["before"]["macs"], build["prune"]["after"]["macs"]
    trt = q["int8"]["tensorrt_problems"] or "no problems"
    worst = sorted(fp["per_film_iou"].items(), key=lambda kv: min(kv[1]))[:5]
    return reflow(f"""# cxr-lungs: lung-field detector for chest films

Boxes the **right and left lung fields** on a frontal chest film (CR or DX), one box each:
`lung_right` is the patient's right lung, on the image's **left** of a PA or AP film. The runtime's
positioning checks read these boxes (a field cut off by the image edge or collimation, marked
left/right asymmetry, a missing field). Quality guidance for radiographers; **not a medical device,
not for diagnosis**.

## What it was trained on

{len(films)} adult chest films of {len(set(films.patients))} patients from the cxr_dev data set (images of the
ieee8023 covid-chestxray-dataset with radiologist lung boxes; CC BY, attribution in `DATA_SOURCE.md`):
{", ".join(f"{n} {v}" for v, n in views.most_common())}; mostly COVID-19 pneumonia, most of them bedside
films from one German hospital (Hannover Medical School). It has **not** been shown to work on
children, lateral films, other hospitals' detectors or processing, or films with large devices over
the chest. Films are augmented with looks of other hospitals (horizontal flips with the labels
swapped, rotation +-10 degrees, scale and shift, collimation crops and shutters with the boxes
clipped, gamma, contrast, brightness, noise, blur, CLAHE, burnt-in markers and text).

## Input and output

Gray, whole film letterboxed to 128x128 (`input.view` "frame"), `(x/255 - 0.5) / 0.25`, built by the
runtime's own `Preprocessor` in training too. Output in the runtime's YOLO layout `[1, 6, 64]`
(cx, cy, w, h in input pixels, then a sigmoid score per label) on an 8x8 grid (stride 16). A plain
Conv-BN-ReLU chain (7 layers, receptive field 159 px), trained {sched["steps"]} steps of {sched["batch"]}
augmented films (AdamW, one-cycle), then pruned by L1-norm filter pruning ({flops:.0%} of MACs removed:
{macs[0] / 1e6:.1f} M -> {macs[1] / 1e6:.1f} M) and fine-tuned {tune} steps. The published model is
trained on all {len(films)} films; its FP32 file is the pruned network, and INT8 comes in two forms from
it: `cxr-lungs-int8.onnx` (symmetric Q/DQ, float biases: TensorRT builds it; parser check: {trt}) and
`cxr-lungs-int8-cpu.onnx` (ONNX Runtime's CPU form, `cpu_files`); nodes kept in float: int8
{kept["int8"]}, int8-cpu {kept["int8-cpu"]}. Thresholds:
a box is reported from score 0.25, at most 4 boxes (NMS IoU 0.45); the runtime takes each field's best.

## Patient-level validation (the headline)

{cv["scheme"][0].upper() + cv["scheme"][1:]}: each fold trains the whole chain
(FP32, prune and fine-tune, both INT8 forms) on the
other patients only. {fp["films"]} films, {fp["patients"]} patients; 95% intervals are percentile
bootstrap intervals resampling patients (2000 resamples). AP50 is the area under the precision-recall
curve at IoU 0.5 (one true box per field and film); mean IoU is the IoU of each field's top-scoring
box with the radiologist's (0 where none).

{figures_table(cv)}

Against FP32, points lost (negative: gained) of mAP50: {drops}; of mean IoU (both fields):
{iou_drops}. Every field of every film is found out of fold, so mAP50 is at its ceiling here and
mean IoU is the figure that tells the variants apart. The publish gate refuses a model whose pruned or
INT8 forms lose more than 1 point of out-of-fold mAP50.

Films where FP32 boxed a field worst (out of fold, IoU right / left):
{chr(10).join(f"- {f}: {a:.2f} / {b:.2f}" for f, (a, b) in worst)}

## Changed films (positioning and other hospitals)

Each fold's INT8 CPU model on its own held-out films (out of fold), as is and changed: cut at one
edge (the field on that side partly off the film), rotated, darker, brighter. Truth boxes move and
are clipped with the film; boxes are clipped to the film as the runtime clips them. "At an edge": the
field's box comes within 2% of the film's edge (what a cut-off check reads), beside how often the
radiologist's box does; a field cut to under a quarter of its size counts as off the film.

{stress_table(stress)}

Many of these films are tightly framed: the radiologists' boxes touch an edge on about half of the
films as they are, so an edge-touch rule alone would flag many acceptable films of this set. A field
cut mostly off the film is still boxed (its visible part, at the edge), so a cut-off shows as a box
at the edge rather than a missing field.

## Limits

- {len(set(films.patients))} patients, most from one hospital: the intervals describe films like these;
  another hospital's films (other detectors and processing, children, obese patients, devices over
  the chest) will score lower, by an amount this data set cannot measure.
- Boxes mark the lung fields as the radiologists drew them (including the parts behind the heart and
  diaphragm as they judged); a field partly hidden by consolidation or effusion can be boxed short.
- Left/right comes from the image side: a film displayed mirrored gives swapped labels.

Reproduce: `python -m tools.cxr_lungs --data PATH/TO/cxr_dev --out models/cxr-lungs` (`cv`, `final`,
`publish`; `--tiny` is the smoke test).
""")


def data_source(data: Path) -> str:
    rows = list(csv.DictReader((data / "metadata.csv").open(newline="")))
    pubs = Counter((r["licence"], r["doi"], r["url"]) for r in rows)
    lines = "\n".join(
        f"- {n} film(s), {lic}: doi {doi or '-'}, {url}" for (lic, doi, url), n in pubs.most_common()
    )
    return f"""# Data source: cxr-lungs

Trained on the cxr_dev data set: chest films of the ieee8023 covid-chestxray-dataset
(https://github.com/ieee8023/covid-chestxray-dataset) with radiologist "Right Lung" / "Left Lung"
boxes from the repository GeneralBlockchain/covid-19-chest-xray-lung-bounding-boxes-dataset. Only
films whose own licence is CC BY (3.0, 4.0 or unversioned) are used; each is attributed to its
original publication below, as CC BY asks. Films were converted to 8-bit gray and scaled.

{lines}
"""
