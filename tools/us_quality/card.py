"""us-quality's ``MODEL_CARD.md``, written from the files the earlier steps left.

Every figure is read from the split, the training log, the quantization choice and the metrics,
so the card cannot disagree with the numbers it quotes; the tests write the committed card again
from the committed model folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.modelkit.cards import figure
from tools.modelkit.pocus import EXCLUDED, FRAME_STEP
from tools.us_quality import LABELS, MODEL_VERSION
from tools.us_quality import degrade as D
from tools.us_quality.data import NATURAL_SHADOW_MAX
from tools.us_quality.model import CHANNELS
from tools.us_quality.phantom import CASES, FRAMES_PER_SCENE, GAIN_MIN_DB, SHADOW_DIAG_MAX, SHADOW_MIN
from tools.us_quality.preprocess import MEAN, SCALE, SIZE, STD
from tools.us_quality.quantize import INT8_CPU_FILE, INT8_FILE

REPRODUCE = (
    ".venv/bin/python -m tools.us_quality --data /work/shared/data/pocus_dev --out models/us-quality --seed 0"
)
UPSTREAM = "jannisborn/covid19_pocus_ultrasound (commit 9e254a140b4faa2c200b8bb5cee2347b7198fbef)"


def load_report(out: Path, name: str) -> dict:
    p = out / name
    return json.loads(p.read_text()) if p.exists() else {}


def _table(m: dict, title: str) -> str:
    rows = [
        f"**{title}**: macro-F1 **{m['macro_f1']:.3f}**, accuracy {m['accuracy']:.3f}",
        "",
        "| class | precision | recall | F1 | n |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for lab, s in m["per_class"].items():
        rows.append(f"| {lab} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['support']} |")
    return "\n".join(rows)


def _confusion(m: dict, title: str) -> str:
    head = "| true \\ predicted | " + " | ".join(LABELS) + " |"
    rows = [f"**{title}**", "", head, "| --- " * (len(LABELS) + 1) + "|"]
    for lab, r in zip(LABELS, m["confusion"]):
        rows.append(f"| {lab} | " + " | ".join(str(v) for v in r) + " |")
    return "\n".join(rows)


def _ranges(params: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in params.items())


def model_card(out: Path, splits: dict[str, list[str]], seed: int, wall_s: float | None) -> str:
    m, log = load_report(out, "metrics.json"), load_report(out, "training_log.json")
    quant = load_report(out, "quantization.json")
    fp, i8, ip = m["fp32"], m["int8_cpu"], m["int8"]  # i8: the CPU form the runtime runs; ip: portable
    forms = quant.get("forms", {})
    split_lines = "\n".join(
        f"- **{k}** ({len(v)}): " + ", ".join(f"`{f}`" for f in v) for k, v in splits.items()
    )
    excluded = "\n".join(f"- `{f}`: {why}" for f, why in EXCLUDED.items())
    env = m.get("environment", {})

    per_clip = "\n".join(
        f"| `{c}` | {figure(fp['per_clip_accuracy'][c])} | {figure(i8['per_clip_accuracy'][c])} "
        f"| {figure(fp['clean_frames_diagnostic'][c])} | {figure(i8['clean_frames_diagnostic'][c])} "
        f"| {fp['natural_shadow_frames'][c]['frames']} / {fp['natural_shadow_frames'][c]['of']} "
        f"| {figure(fp['natural_shadow_frames'][c]['called_shadow'])} "
        f"| {figure(i8['natural_shadow_frames'][c]['called_shadow'])} |"
        for c in m["test_clips"]
    )
    lat = "\n".join(
        f"| {k} | {m[k]['size_bytes']:,} | {m[k]['latency']['median_ms']:.3f} "
        f"| {m[k]['latency']['p99_ms']:.3f} |"
        for k in ("fp32", "int8", "int8_cpu")
    )

    def float_nodes(form: str) -> str:
        nodes = forms.get(form, {}).get("chosen", {}).get("excluded_nodes") or []
        return ", ".join(f"`{n}`" for n in nodes) or "none"

    trt = forms.get(INT8_FILE, {}).get("tensorrt_problems")
    trt_text = "none found" if trt == [] else f"{trt}"
    phantom_cases = "\n".join(
        f"| {c.name} | {c.preset} | {', '.join(c.events) or '-'} | "
        + ", ".join(
            f"{k} {v[0]:g}-{v[1]:g}" if isinstance(v, tuple) else f"{k} {v}" for k, v in c.params.items()
        )
        + f" | {c.weight:g} |"
        for c in CASES
    )
    ph = {k: m[k]["phantom"] for k in ("fp32", "int8_cpu", "int8")}
    ph_classes = "\n".join(
        f"| {lab} | {ph['fp32']['per_class'][lab]['support']} | "
        + " | ".join(
            f"{ph[k]['per_class'][lab]['recall']:.3f} / {ph[k]['per_class'][lab]['precision']:.3f}"
            for k in ("fp32", "int8_cpu", "int8")
        )
        + " |"
        for lab in LABELS
    )
    findings = "\n".join(
        f"| {f} | "
        + " | ".join(figure(ph[k]["diagnostic_rate_by_finding"].get(f)) for k in ("fp32", "int8_cpu", "int8"))
        + " |"
        for f in ph["fp32"]["diagnostic_rate_by_finding"]
    )
    tour_rows = "\n".join(
        f"| {st} | "
        + " | ".join(
            f"{ph[k]['tour']['by_stop'][st][0] / max(sum(ph[k]['tour']['by_stop'][st]), 1):.3f}"
            for k in ("fp32", "int8_cpu", "int8")
        )
        + " | "
        + ", ".join(f"{lab} {n}" for lab, n in zip(LABELS, ph["int8_cpu"]["tour"]["by_stop"][st]) if n)
        + " |"
        for st in ph["fp32"]["tour"]["by_stop"]
    )
    by_case = "\n".join(
        f"| {name} | " + " | ".join(str(v) for v in counts) + " |"
        for name, counts in ph["int8_cpu"]["by_case"].items()
    )
    cfg = log.get("config", {})
    n_nat = log.get("natural_shadow_frames", "?")
    n_all = log.get("decoded_frames", "?")
    gamma = f"{D.DISPLAY_GAMMA[0]:g}-{D.DISPLAY_GAMMA[1]:g}"
    return f"""# us-quality {MODEL_VERSION}: ultrasound frame-quality classifier

## Intended use

Real-time frame-quality guidance for **lung point-of-care ultrasound**: on every frame it says whether the
image is `diagnostic` or why not (`no_contact`: probe in air; `shadow`: a large acoustic shadow or poor
coupling over >= ~35% of the sector; `gain_high`: washed out / saturated; `gain_low`: too dark), so the
operator can fix the scan. It is **not a medical device and not for diagnosis**: it says nothing about
the patient's lungs, and a `diagnostic` frame is only one whose quality looks acceptable.
Findings (B-lines, consolidation, effusion) do not make a frame non-diagnostic: 1.1.0 is also
trained on phantom frames with findings labelled `diagnostic`, so the virtual probe's lung tour is
no longer called `shadow`.

Labels in order: {", ".join(f"`{lab}`" for lab in LABELS)}; `ok_labels`: `diagnostic`. The manifest's
`min_confidence` is 0.5 (softmax of the logits).

## Data

`pocus_dev`: the CC BY 4.0 and CC BY 2.0 lung ultrasound clips and stills of {UPSTREAM} (52 files; convex
and linear probes; COVID-19, bacterial and viral pneumonia and healthy lungs). Attribution (licence, licence
link and DOI / URL of each file) is in [DATA_SOURCE.md](DATA_SOURCE.md), copied from the data's
`SOURCE.md` and `labels.csv`. Clips are labelled clinically, not for quality: the quality classes are made
by degrading these real frames synthetically (below). An undegraded frame stands for `diagnostic` unless
its own (rib) shadows cover more than {NATURAL_SHADOW_MAX:.0%} of the sector (`degrade.natural_shadow`, a
heuristic: beam directions darker than 0.45 x the bright ones); such frames ({n_nat} of the {n_all}
decoded frames of the training and validation clips) are used only as the base of the degraded classes.

**Phantom frames** (new in 1.1.0): the B-mode simulator `firmware_bridge.phantom` (the virtual probe's
image source) renders scenes of the cases below, {FRAMES_PER_SCENE} consecutive frames per scene
(10 fps, random depth, slow probe motion; lung scenes 30% linear probe, else convex). Each frame is
labelled **from the phantom's ground truth only** (`tools/us_quality/phantom.py` `label_of`): probe
lifted (`no_contact` event or no contact) -> `no_contact`; an event shadow over >= {SHADOW_MIN:.0%} of
the sector (`shadow_fraction`) -> `shadow`; gain offset >= +{GAIN_MIN_DB:g} dB -> `gain_high`, <=
-{GAIN_MIN_DB:g} dB -> `gain_low`; anything else with shadow <= {SHADOW_DIAG_MAX:.0%} and |gain| <= 4 dB
(normal lung, B-lines, consolidation, effusion, a narrow rib shadow at the edge, abdomen, bladder) ->
`diagnostic`; frames in between are dropped. Train, validation and test scenes use disjoint seed
ranges. Training used {log.get("phantom_train_frames")} phantom frames (per class
{log.get("phantom_train_per_class")}), validation {log.get("phantom_val_frames")},
test {m.get("phantom_test_frames")}.

| case | preset | events | parameters drawn per scene | weight |
| --- | --- | --- | --- | ---: |
{phantom_cases}

Left out:
{excluded}

Split by **whole clip** (and whole patient where the file name identifies one: the 24 `Reg_patN` clips are
4 patients), stratified by probe and clinical label, seed {seed}; stills go to training. The bundled demo
clip is pinned to the test split. The split ships as [split.json](split.json).

{split_lines}

## Method

- **Input** (the runtime mirrors `tools/us_quality/preprocess.py`): BGR uint8 frame -> gray
  (`cv2.COLOR_BGR2GRAY`) -> `edge.inference.preprocess.area_resize` to {SIZE}x{SIZE} (bilinear to
  the nearest integer multiple, then `INTER_AREA`), stretched -> float32
  `(x * {SCALE} - {MEAN}) / {STD}` -> tensor `[1, 1, {SIZE}, {SIZE}]`, NCHW. Output `logits` `[1, 5]`.
- **Network**: {len(CHANNELS)} conv 3x3 layers (channels/stride {", ".join(f"{c}/{s}" for c, s in CHANNELS)})
  each with BatchNorm and ReLU, global average pool, dropout 0.2, linear; {log.get("params")} parameters.
- **Degradations** (`tools/us_quality/degrade.py`), applied to the full-resolution gray frame inside the
  imaged sector only (sector estimated per clip from the non-dark pixels over time, convex hull), before
  the preprocessing, with per-sample random strength. Lateral / depth coordinates follow the beam (rays
  from the fitted apex for convex sectors, columns for linear):
  - `no_contact`: sector replaced by a noise floor and reverberation bands parallel to the transducer face,
    decaying with depth, plus ring-down haze and a faint tissue residue ({_ranges(D.NO_CONTACT)}).
  - `shadow`: 1-3 rib shadows, a lifted probe edge (optionally with reverberation) or a central coupling
    defect, attenuating the echo from just under the skin / rib down to the bottom over >= 35% of the
    sector's pixels, optional bright rib surface ({_ranges(D.SHADOW)}).
  - `gain_high`: offset and contrast on the log-compressed levels, clipped at 255, with visible noise;
    35% washed-out variant with lower contrast ({_ranges(D.GAIN_HIGH)}).
  - `gain_low`: levels shifted down so a fraction of the sector drops to black, contrast reduced, optional
    depth-dependent (TGC) darkening; the mean ends <= 60% of the original ({_ranges(D.GAIN_LOW)}).
  - `diagnostic`: mild jitter only ({_ranges(D.MILD)}).
  - All classes, before the above: left-right flip, small crops, rescaling (x0.6-1.5), black padding to
    other aspect ratios, synthetic fan / rectangle masks on clips cropped inside the sector (so sector
    geometry varies), and half the time another scanner gray map (gamma {gamma}).
- **Training**: {log.get("train_samples")} rendered real samples (balanced; frames every {FRAME_STEP}rd of
  each training clip, at most {cfg.get("max_frames_per_clip")} per clip) and {log.get("phantom_train_frames")}
  phantom frames; every batch of {cfg.get("batch_size")} holds {cfg.get("phantom_per_batch")} phantom
  frames and {cfg.get("batch_size", 0) - cfg.get("phantom_per_batch", 0)} real samples (an epoch is one pass
  over the real pool). AdamW one-cycle, {cfg.get("epochs")} epochs, label smoothing
  {cfg.get("label_smoothing")}; epoch {log.get("best_epoch")} kept by the mean of the real validation
  clips' macro-F1 ({log.get("val", {}).get("macro_f1")}) and the phantom validation scenes' macro-F1
  ({log.get("phantom_val_macro_f1")}). Deterministic for a seed (torch deterministic
  algorithms, seeded generators per sample, {log.get("config", {}).get("threads")} threads). Training took
  {log.get("train_s")} s on a 2-core CPU. ONNX export (opset 17, static batch 1); ONNX Runtime vs torch max
  abs logit difference: {log.get("onnx_max_abs_diff", float("nan")):.2e}.
- **INT8**, two forms from one calibration (`tools.modelkit.quantize.quantize_qdq`:
  `quant_pre_process`, then `quantize_static`, QDQ format, per-channel symmetric QInt8 weights, MinMax
  calibration on {quant.get("calibration_samples")} training-split frames,
  {quant.get("calibration_phantom_samples")} of them phantom), as the lung detector does:
  - `{INT8_FILE}` (manifest `files.int8`, portable): symmetric QInt8 activations, float biases, what
    TensorRT's ONNX parser builds INT8 engines from; `tensorrt_qdq_problems`: {trt_text}. Layers kept in
    float: {float_nodes(INT8_FILE)}.
  - `{INT8_CPU_FILE}` (manifest `cpu_files.int8`: what ONNX Runtime on the CPU loads for `int8`):
    asymmetric QUInt8 activations, int32 biases (each ReLU folds into its convolution). Layers kept in
    float: {float_nodes(INT8_CPU_FILE)}.
  Layers are kept in float only if a form loses more than 1 point of the validation score (mean of real
  and phantom validation macro-F1); the tries are in `quantization.json`.

## Results on the held-out test clips

{m["samples"]} frames: {m["frames_per_clip"]} evenly spaced frames of each of the {len(m["test_clips"])}
test clips, each rendered as every class with seed {m["seed"]} ({m["samples_per_class"]} per class).
Evaluated with ONNX Runtime {env.get("onnxruntime")} on the CPU, batch 1.

{_table(fp, "FP32")}

{_table(i8, "INT8, CPU form (`cpu_files.int8`)")}

{_table(ip, "INT8, portable form (`files.int8`)")}

{_confusion(fp, "FP32 confusion matrix")}

{_confusion(i8, "INT8 CPU form confusion matrix")}

Per test clip: accuracy over all rendered classes; the share of the clip's untouched frames (every
{FRAME_STEP}rd frame, no degradation, no augmentation: what the runtime would see) without large natural
shadows that is called `diagnostic`; and how many untouched frames have natural (rib) shadows over more
than {NATURAL_SHADOW_MAX:.0%} of the sector by `degrade.natural_shadow` (never used as `diagnostic`), with
the share of those called `shadow`:

| clip | acc. FP32 | INT8 CPU | clean -> diag. FP32 | INT8 CPU | nat.-shadow | -> shadow FP32 | INT8 CPU |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{per_clip}

## Results on the phantom test set

{m.get("phantom_test_frames")} frames of {m.get("phantom_test_scenes")} phantom test scenes (seeds used by no
other split; cases and labels as in *Data*). Recall / precision per class:

| class | n | FP32 | INT8 CPU | INT8 portable |
| --- | ---: | ---: | ---: | ---: |
{ph_classes}

Phantom macro-F1: FP32 {ph["fp32"]["macro_f1"]:.3f}, INT8 CPU {ph["int8_cpu"]["macro_f1"]:.3f}, INT8 portable
{ph["int8"]["macro_f1"]:.3f}. Diagnostic frames **with lung findings** (B-lines, consolidation, effusion;
{ph["fp32"]["findings_frames"]} frames) called `diagnostic`:
FP32 **{figure(ph["fp32"]["findings_diagnostic_rate"])}**,
INT8 CPU **{figure(ph["int8_cpu"]["findings_diagnostic_rate"])}**, INT8 portable
**{figure(ph["int8"]["findings_diagnostic_rate"])}**. Per finding of the diagnostic cases:

| finding | FP32 | INT8 CPU | INT8 portable |
| --- | ---: | ---: | ---: |
{findings}

Predicted labels per case (INT8 CPU form; columns {", ".join(LABELS)}):

| case | {" | ".join(LABELS)} |
| --- |{" ---: |" * len(LABELS)}
{by_case}

The virtual probe's default lung tour (`firmware_bridge.phantom.tour("lung")`, a test seed,
{m.get("tour_frames")} frames at {m.get("tour_fps")} fps): share called `diagnostic` per stop, and the INT8
CPU form's labels. Overall: FP32 {ph["fp32"]["tour"]["diagnostic_rate"]:.3f}, INT8 CPU
{ph["int8_cpu"]["tour"]["diagnostic_rate"]:.3f}, INT8 portable {ph["int8"]["tour"]["diagnostic_rate"]:.3f}.

| stop | FP32 | INT8 CPU | INT8 portable | INT8 CPU labels |
| --- | ---: | ---: | ---: | --- |
{tour_rows}

Size and single-frame latency (ONNX Runtime CPU, 1 intra-op thread, {fp["latency"]["runs"]} runs each,
interleaved in one process on this 2-core development machine, `{env.get("processor")}`):

| file | bytes | median ms | p99 ms |
| --- | ---: | ---: | ---: |
{lat}

## Limitations

- Quality classes are **synthetic**: real probe-in-air, rib shadows, coupling loss and gain errors vary
  more than the models of them here. The `shadow` class is learnt from synthetic shadows only: untouched
  test frames whose real rib shadows cover > {NATURAL_SHADOW_MAX:.0%} of the sector are *not* called `shadow`
  (table above); between ~30% and 40% natural shadow the diagnostic / shadow boundary is a grey zone.
- The gain classes have soft edges: `gain_high` examples always saturate part of the sector and
  `gain_low` examples lose >= 35% of it to black, so milder gain errors (e.g. +-10 dB) are often
  called `diagnostic`.
- **Small data**: {sum(len(v) for v in splits.values())} files from a handful of publications and
  scanners; 24 of the videos are 4 patients from one source. Held-out figures come from
  {len(m["test_clips"])} clips and are optimistic for other scanners, presets and display pipelines.
- **Lung only**, adult, B-mode; not trained on cardiac, abdominal, M-mode, Doppler or colour overlays.
  Burned-in text and measurement calipers were not modelled.
- Gain judgements are relative to the look of these clips' displays; another scanner's default gain or
  dynamic range may shift the gain_high / gain_low boundaries.
- The `diagnostic` probability is not calibrated.
- The phantom frames teach the simulator's look (its speckle, its shadows, its gain): they fix the
  virtual probe's findings being called `shadow`, but say nothing about real B-lines or effusions,
  and the phantom test figures are far easier than real scans (the phantom is the training source).

## Reproduce

```
{REPRODUCE}
```

(`.venv/bin/pip install torch==2.13.0` first; torch is needed only by the tools, never by the runtime).
Single steps: `... train`, `... quantize`, `... evaluate`, `... publish`, `... bundle`; `--tiny` runs the
chain on a few frames into a temp folder. Decoded frames are cached under `/tmp/us_quality_cache`.
{f"The full run took {wall_s / 60:.1f} min wall time on a 2-core CPU." if wall_s else ""}
"""
