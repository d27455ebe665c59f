"""Step ``publish``: ``manifest.json``, ``MODEL_CARD.md`` (``card``), ``DATA_SOURCE.md``; and ``bundle``,
the demo clip.

Everything here is derived from the files the earlier steps wrote (split, training log,
quantization choice, metrics). The manifest, the attribution and the writing of the folder are
``tools.modelkit``'s.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import cv2

from edge.inference.manifest import InputSpec, Manifest
from tools.modelkit.cards import CARD_NAME, write_model_docs
from tools.modelkit.manifest import build_manifest
from tools.modelkit.pocus import data_source, load_labels, video_frames
from tools.us_quality import FAULT_MIN_CONFIDENCE, LABELS, MODEL_NAME, MODEL_VERSION
from tools.us_quality import degrade as D
from tools.us_quality.card import GATE, UPSTREAM, load_report, model_card
from tools.us_quality.grouped_report import at_threshold, int8_gap
from tools.us_quality.model import CHANNELS
from tools.us_quality.preprocess import MEAN, SCALE, SIZE, STD
from tools.us_quality.quantize import INT8_CPU_FILE, INT8_FILE
from tools.us_quality.train import FP32_FILE
from tools.us_quality.view import VIEW


def _recipe(train_log: dict, quant: dict) -> str:
    cfg = train_log.get("config", {})
    fit = cfg.get("fit", {})
    return (
        f"{len(CHANNELS)}x(conv3x3+BN+ReLU) CNN, global average pool, linear; "
        f"{train_log.get('params')} params; input: the imaging sector, cropped, 0 outside its mask, "
        f"intensity-normalised, gray {SIZE}x{SIZE} stretched, (x/255-0.5)/0.25; faults defined relative to "
        f"the normalised image (no_contact, shadow >= {D.SHADOW_MIN_AREA:.0%} of the sector, gain_high >= 8% "
        "clipped, gain_low >= 50% crushed) rendered on every pocus_dev clip under random scanner looks "
        "(gain x0.4-1.6, gamma 0.6-1.6, gray maps, TGC, blur, rib shadows, a far field beyond penetration, "
        "geometry), plus {train_log.get('phantom_train_frames')} "
        f"phantom frames labelled from the phantom's truth ({fit.get('phantom_per_batch')} of each batch "
        f"of {fit.get('batch_size')}); AdamW lr {fit.get('lr')} one-cycle, {fit.get('steps')} steps, label "
        f"smoothing {fit.get('label_smoothing')}, last weights kept; evaluated by leave-one-source-out "
        "(grouped_cv.json); INT8 by onnxruntime quantize_static QDQ, per-channel QInt8 weights, MinMax on "
        f"{quant.get('calibration_samples')} training frames: {INT8_FILE} symmetric QInt8 activations, "
        f"float biases (TensorRT-buildable); {INT8_CPU_FILE} (cpu_files) asymmetric QUInt8, int32 biases"
        + "".join(
            f"; {f} float nodes {v['chosen']['excluded_nodes']}"
            for f, v in quant.get("forms", {}).items()
            if v["chosen"]["excluded_nodes"]
        )
    )


def manifest(out: Path, splits: dict[str, list[str]], seed: int) -> dict:
    train_log, quant = load_report(out, "training_log.json"), load_report(out, "quantization.json")
    used = sorted(f for files in splits.values() for f in files)
    doc = build_manifest(
        out / FP32_FILE,
        name=MODEL_NAME,
        version=MODEL_VERSION,
        task="classification",
        modality=("US",),
        description=(
            "Ultrasound frame-quality classifier for lung point-of-care ultrasound, on the imaging "
            "sector in scan lines, normalised: tells a diagnostic frame from probe-in-air (no_contact), "
            "large acoustic shadow / poor coupling (shadow), and gain far too high (clipped) or far too "
            "low (crushed). "
            "Quality guidance only; not a medical device, not for diagnosis."
        ),
        input_size=(SIZE, SIZE),
        color="gray",
        resize="stretch",
        normalize={"scale": SCALE, "mean": [MEAN], "std": [STD]},
        output_kind="logits",
        labels=LABELS,
        ok_labels=["diagnostic"],
        urgent_labels=None,
        thresholds={"min_confidence": 0.5, "fault_min_confidence": FAULT_MIN_CONFIDENCE},
        files={"int8": out / INT8_FILE},
        cpu_files={"int8": out / INT8_CPU_FILE},
        default_precision="int8",
        provenance={
            "data": (
                f"pocus_dev: {len(used)} lung POCUS clips and stills (CC BY 4.0 / CC BY 2.0) from "
                f"{UPSTREAM}, all used for training (split.json); files, licences and DOIs in "
                "DATA_SOURCE.md; plus frames of the firmware_bridge.phantom simulator labelled from its "
                "ground truth"
            ),
            "training_code": "tools/us_quality",
            "seed": seed,
            "recipe": _recipe(train_log, quant),
            "created": dt.date.today().isoformat(),
        },
        card=CARD_NAME,
    )
    return with_view(doc)


def with_view(doc: dict) -> dict:
    """The manifest with ``input.view`` set to the view the model was trained on (``view.VIEW``),
    checked again by the runtime's own ``Manifest``. A runtime without views cannot feed this model
    what it was trained on: said loudly, and the manifest left without the key."""
    if VIEW == "frame":
        return doc
    if "view" not in InputSpec.model_fields:
        print(f"WARNING: this runtime's manifest has no input.view; the model was trained on view {VIEW!r}")
        return doc
    doc["input"]["view"] = VIEW
    Manifest.model_validate(doc)
    return doc


def publish(
    out: Path,
    data_dir: Path,
    splits: dict[str, list[str]],
    seed: int,
    tiny: bool = False,
    wall_s: float | None = None,
) -> dict:
    used = sorted(f for files in splits.values() for f in files)
    grouped = at_threshold(load_report(out, "grouped_cv.json"), FAULT_MIN_CONFIDENCE)
    gap = int8_gap(grouped) if grouped.get("clips") else {}
    if not tiny and any(v > GATE for v in gap.values()):
        print(f"publish refused: INT8 loses more than {GATE:.0%} against FP32 on the grouped figures: {gap}")
        raise SystemExit(3)
    man = manifest(out, splits, seed)
    card = model_card(out, splits, seed, wall_s)
    shrunk = "a few frames, one epoch" if tiny else None
    path = write_model_docs(out, man, card, data_source(data_dir, used, MODEL_NAME), smoke_test=shrunk)
    print(f"published {path}", flush=True)
    return man


def video_info(path: Path) -> dict:
    n, shape = 0, None
    for frame in video_frames(path):
        n, shape = n + 1, frame.shape
    cap = cv2.VideoCapture(str(path))
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
            + (
                " (never seen in training or model selection)\n"
                if split == "test"
                else " (us-quality and lung-detector 2.x train on every labelled clip: their figures "
                "on unseen sources are the leave-one-source-out ones of their model cards)\n"
            )
        )
    source = (data_dir / "SOURCE.md").read_text().strip()
    parts.append("## SOURCE.md of pocus_dev (verbatim)\n\n" + source + "\n")
    (assets / "SOURCE.md").write_text("\n".join(parts))
    print(f"bundled {', '.join(files)} into {assets}", flush=True)
