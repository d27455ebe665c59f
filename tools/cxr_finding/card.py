"""MODEL_CARD.md and DATA_SOURCE.md of models/cxr-finding, every figure read from the recipe's files."""

from __future__ import annotations

from typing import Any

from tools.cxr_finding.data import Films
from tools.modelkit.reflow import reflow

NAMES = {
    "fp32": "FP32",
    "pruned": "pruned (FP32)",
    "int8": "INT8 portable (TensorRT Q/DQ)",
    "int8-cpu": "INT8 CPU form",
}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _ci(d: dict[str, Any]) -> str:
    return f"{d['value']:.3f} ({d['low']:.3f}-{d['high']:.3f})"


def figures_table(cv: dict[str, Any]) -> str:
    rows = [
        "| variant | AUC | pneumonia: sensitivity | pneumonia: PPV | normal: specificity | normal: NPV |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for v, f in cv["variants"].items():
        rows.append(
            f"| {NAMES.get(v, v)} | {_ci(f['auc'])} | {_ci(f['sensitivity'])} | {_ci(f['ppv'])} | "
            f"{_ci(f['specificity'])} | {_ci(f['npv'])} |"
        )
    return "\n".join(rows)


def _shares(s: dict[str, Any]) -> str:
    out = []
    for k, v in s.items():
        if isinstance(v, dict) and v.get("mass") is not None:
            out.append(f"{k}: {v['mass']:.0%} of the mass on {v['area']:.0%} of the area")
    return "; ".join(out)


def _adult(checks: dict[str, Any]) -> str:
    a = checks.get("adult")
    if not a:
        return "Not scored in this run."
    lines = [
        "| finding (cxr_dev metadata) | films | called pneumonia, FP32 | INT8 CPU |",
        "| --- | --- | --- | --- |",
    ]
    fp, i8 = a["variants"]["fp32"], a["variants"].get("int8-cpu", {})
    for name, r in fp.items():
        q = i8.get(name, {})
        lines.append(
            f"| {name} | {r['films']} | {r['called_pneumonia']} | {q.get('called_pneumonia', '-')} |"
        )
    text = "\n".join(lines)
    if "todo" in fp:
        text += "\n\n(`todo`: no finding recorded in the metadata yet.)"
    covid, normal = fp.get("COVID-19"), fp.get("No Finding")
    said = []
    if covid:
        said.append(
            f"it called {covid['called_pneumonia']} of {covid['films']} COVID-19 pneumonia films pneumonia "
            f"({covid['called_pneumonia'] / covid['films']:.0%})"
        )
    if normal:
        said.append(
            f"{normal['called_pneumonia']} of the {normal['films']} films without a finding pneumonia"
        )
    if said:
        text += "\n\nOn adults " + " and ".join(said) + "."
    cam = a.get("cam", {})
    if cam:
        text += (
            "\n\nWhere its heatmap looks on these films (the lung fields are the radiologists' boxes here): "
            f"{_shares(cam)}."
        )
    return text


def model_card(cv: dict[str, Any], build: dict[str, Any], checks: dict[str, Any], films: Films) -> str:
    fp = cv["variants"]["fp32"]
    drops = ", ".join(f"{k.replace('_vs_fp32', '')} {v * 100:+.2f}" for k, v in cv["drops"].items())
    masked = cv["border_masked_fp32"]
    r = checks["review"]
    h = checks["heatmap"]
    q = build["quantize"]["forms"]
    macs = build["prune"]["before"]["macs"], build["prune"]["after"]["macs"]
    trt = q["int8"]["tensorrt_problems"] or "no problems"
    decision = build["decision_threshold"]
    found = _pct(h.get("lung_detector_found_both"))
    return reflow(f"""# cxr-finding: normal vs pneumonia on a chest film, with a heatmap

**Trained on films of children aged 1 to 5 from one hospital (Guangzhou Women and Children's Medical
Center).** It has **not been shown to work on adults, on other hospitals' films or on other detectors**,
and it is **not for diagnosis**: a triage aid that puts a film with a likely finding first for a
reader, and a review flag on uncertain calls. Labels `normal`, `pneumonia` (bacterial and viral
together); the heatmap shows where the evidence for the called label lies, not a lesion outline.

## What it was trained on

{len(films.files)} films ({fp["negatives"]} normal, {fp["positives"]} pneumonia) of {cv["patients"]} patients
from the cxr_kermany data set (Kermany et al., Cell 2018; CC BY 4.0, `DATA_SOURCE.md`), already
resized by its source to 224x224 without keeping the aspect ratio. The patient comes from the file name
(`personN_...`, `IM-XXXX-...`, `NORMAL2-IM-XXXX-...`); a child's normal and pneumonia films cannot be
linked by these names, so a child filmed both ill and well may sit in two folds under two ids,
which would flatter the figures a little.

Against shortcuts (burnt-in markers and text near the edges, crops that differ by class): every
training film gets a random crop (75-100% of each side), rotation, exposure changes, and in half of
them a masked border band and random side markers and text, in both classes alike.

## Input and outputs

Gray, the whole film stretched to 112x112 (`input.view` "frame", as the source stretched it to a
square), `(x/255 - 0.5) / 0.25`, built by the runtime's own `Preprocessor` in training too. Outputs:
`logits` [1, 2] and `heatmap` [1, 2, 7, 7] float32: the class-activation maps (last conv features x
the linear weights, one per label, before any normalisation, covering the whole input); the logits
are the maps' means plus a bias. A plain Conv-BN-ReLU chain (6 layers, stride 16) pruned by L1-norm
filter pruning ({build["prune"]["flops_removed"]:.0%} of MACs removed:
{macs[0] / 1e6:.1f} M -> {macs[1] / 1e6:.1f} M) and fine-tuned; the
published FP32 file is the pruned network. INT8 in two forms from it: `cxr-finding-int8.onnx`
(symmetric Q/DQ, float biases: TensorRT builds it; parser check: {trt})
and `cxr-finding-int8-cpu.onnx` (ONNX Runtime's CPU form, `cpu_files`).

The decision point: the runtime reports the argmax label. The published model's Youden threshold on
a tenth of the patients held back from its training (P(pneumonia) {decision:.3f}) is folded into its
pneumonia bias, so the argmax is that decision. `thresholds.review_below` = {r["review_below"]}: a call
whose probability is under it is flagged for review.

## Patient-level validation (the headline)

{cv["scheme"][0].upper() + cv["scheme"][1:]}. {cv["threshold_from"]},
before the validation fold is scored; each fold trains the
whole chain (FP32, prune and fine-tune, both INT8 forms). {cv["films"]} films of {cv["patients"]} patients;
95% intervals are percentile bootstrap intervals resampling patients (2000 resamples).

{figures_table(cv)}

Against FP32, points of AUC lost (negative: gained; the pruned network was fine-tuned for one more
epoch): {drops}. The publish gate refuses a model whose pruned or INT8
forms lose more than 1 point of AUC. These figures are from the same hospital and population as the
training films: a new hospital will score lower, by an amount this data set cannot measure.

Review flag (out of fold, INT8 CPU form, each fold's threshold folded in as for the published model):
{_pct(r["flagged_share"])} of films flagged; accuracy {_pct(r["accuracy_flagged"])} among flagged and
{_pct(r["accuracy_not_flagged"])} among the rest; {_pct(r["errors_flagged_share"])} of the errors carry
the flag.

## Where the heatmap looks (shortcut check)

Out of fold, FP32, the called label's map (positive part) resized to the film; the lung fields boxed
by the cxr-lungs detector (both fields found on {found} of these films; it was trained
on adults, and on these tightly framed films its boxes cover about two thirds of the image, so the
lung share can only rise from about two thirds towards one):

- all films: {_shares(h["all"])}
- called pneumonia: {_shares(h["called pneumonia"])}
- called normal: {_shares(h["called normal"])}

With a 12% band of every side blacked out at test time (markers and text gone), FP32 out-of-fold AUC
is {_ci(masked["auc"])} against {_ci(fp["auc"])} as is.

## Out of domain: adult films (cxr_dev)

The published model on the 86 adult films of the cxr_dev data set (mostly bedside AP films of COVID-19
pneumonia from Germany, findings from its metadata; almost no normal films, so no specificity or AUC
can be measured there):

{_adult(checks)}

What this shows: on adults the model misses many pneumonias, calls films without a finding
pneumonia, and its heatmap falls on the lung fields no more than on the rest of the film (compare
the share of the mass with the share of the area), where on the children's films it is drawn to
them. Two normal films measure no false-alarm rate, and the films were never meant for this model:
the table is evidence that it does **not** transfer to adults, not a measure of how it would do.

Reproduce: `python -m tools.cxr_finding --data PATH/TO/cxr_kermany --lungs models/cxr-lungs --adult
PATH/TO/cxr_dev --out models/cxr-finding` (`cv`, `final`, `check`, `publish`; `--tiny` is the smoke test).
""")


def data_source() -> str:
    return """# Data source: cxr-finding

Trained on the cxr_kermany data set: paediatric chest X-rays, NORMAL / PNEUMONIA (the train split).

Kermany D, Zhang K, Goldbaum M et al., "Identifying Medical Diagnoses and Treatable Diseases by
Image-Based Deep Learning", Cell 172(5), 2018, doi:10.1016/j.cell.2018.02.010. Data: "Large Dataset
of Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images", Mendeley Data,
doi:10.17632/rscbjbr9sj.3, licence CC BY 4.0. Taken from the public repository
waliatushar/ai-pneumonia-detection, which resized every image to 224x224 (aspect ratio not kept).
Children aged 1 to 5 from Guangzhou Women and Children's Medical Center.

Scored out of domain (not trained on) on the cxr_dev data set: adult films of the ieee8023
covid-chestxray-dataset, CC BY, attributed per film in models/cxr-lungs/DATA_SOURCE.md.
"""
