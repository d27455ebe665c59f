"""Publishing: file hashes, ``manifest.json``, ``MODEL_CARD.md``, ``DATA_SOURCE.md``, and the demo clip.

Everything here is derived from the files the earlier steps wrote (split, training log,
quantization choice, metrics), so the card cannot disagree with the numbers it quotes.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import shutil
from pathlib import Path

import cv2

from tools.us_quality import LABELS, MODEL_NAME, MODEL_VERSION
from tools.us_quality import degrade as D
from tools.us_quality.data import EXCLUDED, FRAME_STEP, NATURAL_SHADOW_MAX, load_labels
from tools.us_quality.model import CHANNELS
from tools.us_quality.preprocess import MEAN, SCALE, SIZE, STD
from tools.us_quality.quantize import INT8_FILE
from tools.us_quality.train import FP32_FILE

REPRODUCE = (
    ".venv/bin/python -m tools.us_quality --data /work/shared/data/pocus_dev --out models/us-quality --seed 0"
)
UPSTREAM = "jannisborn/covid19_pocus_ultrasound (commit 9e254a140b4faa2c200b8bb5cee2347b7198fbef)"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load(out: Path, name: str) -> dict:
    p = out / name
    return json.loads(p.read_text()) if p.exists() else {}


def _recipe(train_log: dict, quant: dict) -> str:
    cfg = train_log.get("config", {})
    chosen = quant.get("chosen", {})
    return (
        f"{len(CHANNELS)}x(conv3x3+BN+ReLU) CNN, global average pool, linear; "
        f"{train_log.get('params')} params; input gray {SIZE}x{SIZE} stretched, (x/255-0.5)/0.25; "
        "synthetic degradations of real frames (no_contact, shadow, gain_high, gain_low; mild jitter for "
        f"diagnostic); AdamW lr {cfg.get('lr')} one-cycle, {cfg.get('epochs')} epochs over "
        f"{cfg.get('pool_size')} rendered samples, label smoothing {cfg.get('label_smoothing')}, best epoch "
        "by validation macro-F1; INT8 by onnxruntime quantize_static QDQ, per-channel QInt8 weights, "
        f"{chosen.get('activation', '?')} activations, MinMax on "
        f"{quant.get('calibration_samples')} training-split frames"
        + (f", float nodes {chosen.get('excluded_nodes')}" if chosen.get("excluded_nodes") else "")
    )


def manifest(out: Path, splits: dict[str, list[str]], seed: int) -> dict:
    train_log, quant = _load(out, "training_log.json"), _load(out, "quantization.json")
    used = sorted(f for files in splits.values() for f in files)
    return {
        "schema_version": 1,
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "task": "classification",
        "modality": ["US"],
        "description": (
            "Ultrasound frame-quality classifier for lung point-of-care ultrasound: tells a diagnostic "
            "frame from probe-in-air (no_contact), large acoustic shadow / poor coupling (shadow), and "
            "gain too high or too low. Quality guidance only; not a medical device, not for diagnosis."
        ),
        "input": {
            "name": "input",
            "shape": [1, 1, SIZE, SIZE],
            "layout": "NCHW",
            "color": "gray",
            "dtype": "float32",
            "resize": "stretch",
            "normalize": {"scale": SCALE, "mean": [MEAN], "std": [STD]},
        },
        "outputs": [{"name": "logits", "kind": "logits"}],
        "labels": list(LABELS),
        "ok_labels": ["diagnostic"],
        "thresholds": {"min_confidence": 0.5},
        "files": {
            "fp32": {"path": FP32_FILE, "sha256": sha256_file(out / FP32_FILE)},
            "int8": {"path": INT8_FILE, "sha256": sha256_file(out / INT8_FILE)},
        },
        "default_precision": "int8",
        "provenance": {
            "data": (
                f"pocus_dev: {len(used)} lung POCUS clips and stills (CC BY 4.0 / CC BY 2.0) from "
                f"{UPSTREAM}; files, licences and DOIs in DATA_SOURCE.md, split by clip in split.json"
            ),
            "training_code": "tools/us_quality",
            "seed": seed,
            "recipe": _recipe(train_log, quant),
            "created": dt.date.today().isoformat(),
        },
        "card": "MODEL_CARD.md",
    }


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
    m, log = _load(out, "metrics.json"), _load(out, "training_log.json")
    quant = _load(out, "quantization.json")
    fp, i8 = m["fp32"], m["int8"]
    chosen = quant.get("chosen", {})
    split_lines = "\n".join(
        f"- **{k}** ({len(v)}): " + ", ".join(f"`{f}`" for f in v) for k, v in splits.items()
    )
    excluded = "\n".join(f"- `{f}`: {why}" for f, why in EXCLUDED.items())
    env = m.get("environment", {})

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    per_clip = "\n".join(
        f"| `{c}` | {num(fp['per_clip_accuracy'][c])} | {num(i8['per_clip_accuracy'][c])} "
        f"| {num(fp['clean_frames_diagnostic'][c])} | {num(i8['clean_frames_diagnostic'][c])} "
        f"| {fp['natural_shadow_frames'][c]['frames']} / {fp['natural_shadow_frames'][c]['of']} "
        f"| {num(fp['natural_shadow_frames'][c]['called_shadow'])} "
        f"| {num(i8['natural_shadow_frames'][c]['called_shadow'])} |"
        for c in m["test_clips"]
    )
    lat = "\n".join(
        f"| {k} | {m[k]['size_bytes']:,} | {m[k]['latency']['median_ms']:.3f} "
        f"| {m[k]['latency']['p99_ms']:.3f} |"
        for k in ("fp32", "int8")
    )
    float_nodes = chosen.get("excluded_nodes") or []
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
- **Training**: {log.get("train_samples")} rendered samples (balanced; frames every {FRAME_STEP}rd of each
  training clip, at most {log.get("config", {}).get("max_frames_per_clip")} per clip), AdamW one-cycle,
  {log.get("config", {}).get("epochs")} epochs, batch {log.get("config", {}).get("batch_size")}, label
  smoothing {log.get("config", {}).get("label_smoothing")}; epoch {log.get("best_epoch")} kept by
  validation macro-F1 ({log.get("val", {}).get("macro_f1")}). Deterministic for a seed (torch deterministic
  algorithms, seeded generators per sample, {log.get("config", {}).get("threads")} threads). Training took
  {log.get("train_s")} s on a 2-core CPU. ONNX export (opset 17, static batch 1); ONNX Runtime vs torch max
  abs logit difference: {log.get("onnx_max_abs_diff", float("nan")):.2e}.
- **INT8**: `onnxruntime.quantization.quant_pre_process`, then `quantize_static`, QDQ format, per-channel
  QInt8 weights, {chosen.get("activation")} activations (chosen on the validation clips among QUInt8 /
  QInt8), MinMax calibration on {quant.get("calibration_samples")} rendered frames of the training split,
  all classes. Layers kept in float: {", ".join(f"`{n}`" for n in float_nodes) or "none"}.

## Results on the held-out test clips

{m["samples"]} frames: {m["frames_per_clip"]} evenly spaced frames of each of the {len(m["test_clips"])}
test clips, each rendered as every class with seed {m["seed"]} ({m["samples_per_class"]} per class).
Evaluated with ONNX Runtime {env.get("onnxruntime")} on the CPU, batch 1.

{_table(fp, "FP32")}

{_table(i8, "INT8")}

{_confusion(fp, "FP32 confusion matrix")}

{_confusion(i8, "INT8 confusion matrix")}

Per test clip: accuracy over all rendered classes; the share of the clip's untouched frames (every
{FRAME_STEP}rd frame, no degradation, no augmentation: what the runtime would see) without large natural
shadows that is called `diagnostic`; and how many untouched frames have natural (rib) shadows over more
than {NATURAL_SHADOW_MAX:.0%} of the sector by `degrade.natural_shadow` (never used as `diagnostic`), with
the share of those called `shadow`:

| clip | acc. FP32 | acc. INT8 | clean -> diag. FP32 | INT8 | natural-shadow frames | -> shadow FP32 | INT8 |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{per_clip}

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

## Reproduce

```
{REPRODUCE}
```

(`.venv/bin/pip install torch==2.13.0` first; torch is needed only by the tools, never by the runtime).
Single steps: `... train`, `... quantize`, `... evaluate`, `... publish`, `... bundle`; `--tiny` runs the
chain on a few frames into a temp folder. Decoded frames are cached under `/tmp/us_quality_cache`.
{f"The full run took {wall_s / 60:.1f} min wall time on a 2-core CPU." if wall_s else ""}
"""


def data_source(data_dir: Path, used: list[str], model: str = MODEL_NAME) -> str:
    src = (data_dir / "SOURCE.md").read_text().strip()
    with (data_dir / "labels.csv").open(newline="") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = list(next(iter(rows.values())).keys())
    w.writerow(header)
    for f in sorted(used):
        w.writerow([rows[f][k] for k in header])
    table = "| file | licence | licence link | DOI | URL |\n| --- | --- | --- | --- | --- |\n" + "\n".join(
        f"| `{f}` | {rows[f]['License']} | {rows[f]['LinkToLicense']} | {rows[f]['DOI'] or '-'} | "
        f"{rows[f]['URL (Video Name)'] or '-'} |"
        for f in sorted(used)
    )
    return (
        f"# Data used to train and evaluate {model}\n\n"
        "The model was trained on, and evaluated on, the files below (see `split.json` for which split "
        "each is in). Their licences require attribution; it is reproduced here. The text of the data set's "
        "`SOURCE.md` follows, then each file's licence and publication.\n\n"
        "## SOURCE.md (verbatim)\n\n" + src + "\n\n## Files used\n\n" + table + "\n\n"
        "## labels.csv rows of the files used (verbatim)\n\n```csv\n" + buf.getvalue() + "```\n"
    )


def publish(
    out: Path,
    data_dir: Path,
    splits: dict[str, list[str]],
    seed: int,
    tiny: bool = False,
    wall_s: float | None = None,
) -> dict:
    used = sorted(f for files in splits.values() for f in files)
    (out / "DATA_SOURCE.md").write_text(data_source(data_dir, used))
    man = manifest(out, splits, seed)
    (out / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")
    card = model_card(out, splits, seed, wall_s)
    if tiny:
        card = "> SMOKE TEST (--tiny): a few frames, one epoch; the numbers below mean nothing.\n\n" + card
    (out / "MODEL_CARD.md").write_text(card)
    print(f"published {out / 'manifest.json'}", flush=True)
    return man


def video_info(path: Path) -> dict:
    cap = cv2.VideoCapture(str(path))
    n = 0
    shape = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return {
        "frames": n,
        "fps": round(float(fps), 3),
        "shape": list(shape) if shape else None,
        "bytes": path.stat().st_size,
    }


def bundle_clips(data_dir: Path, assets: Path, files: tuple[str, ...], splits: dict[str, list[str]]) -> None:
    """Copy the demo clip(s) unchanged into the runtime's assets, with their attribution."""
    recs = {r.file: r for r in load_labels(data_dir)}
    assets.mkdir(parents=True, exist_ok=True)
    parts = [
        "# Bundled ultrasound clips\n",
        "The runtime's embedded default source plays these clips (it loops them). They are copied "
        "unchanged from the `pocus_dev` development set, itself a subset of "
        f"{UPSTREAM}. Each is under a Creative Commons Attribution licence; the attribution follows.\n",
    ]
    for f in files:
        src, dst = data_dir / f, assets / Path(f).name
        shutil.copyfile(src, dst)
        info = video_info(dst)
        r = recs[f]
        split = next((k for k, v in splits.items() if f in v), "not used")
        parts.append(
            f"## `{dst.name}`\n\n"
            f"- origin: `{f}` in pocus_dev (upstream `{r.name}`; clinical label {r.label}, {r.probe} probe)\n"
            f"- licence: {r.licence} ({r.licence_link})\n"
            f"- DOI: {r.doi or '-'}\n- URL / source: {r.url or '-'}\n"
            f"- {info['frames']} frames, {info['fps']} fps, {info['shape'][1]}x{info['shape'][0]} px, "
            f"{info['bytes']:,} bytes (read with OpenCV {cv2.__version__})\n"
            f"- us-quality split: **{split}**"
            + (" (never seen in training or model selection)\n" if split == "test" else "\n")
        )
    source = (data_dir / "SOURCE.md").read_text().strip()
    parts.append("## SOURCE.md of pocus_dev (verbatim)\n\n" + source + "\n")
    (assets / "SOURCE.md").write_text("\n".join(parts))
    print(f"bundled {', '.join(files)} into {assets}", flush=True)
