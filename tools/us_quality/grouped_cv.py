"""Leave-one-source-out cross-validation of the us-quality recipe on pocus_dev (the card's headline).

A source is a publication or site (``tools.modelkit.grouped.source_of``); sources with fewer than
``MIN_SOURCE_FRAMES`` decoded frames (a few stills each) are held out together in one fold, so a
fold's figures rest on more than a handful of frames; no source is ever in its own fold's training
data. Per fold a fresh model is trained with the published recipe (``fit``, a fixed number of steps:
no model selection, no threshold: the label is the arg-max, as the runtime takes it), exported, and
quantized to both INT8 forms with calibration frames from the fold's training sources only.

Scored on the held-out sources, per clip (so intervals can resample clips and sources):
- every decoded frame untouched (what the runtime sees), as is and darker (``sources.DARK_VARIANTS``):
  called ``diagnostic``?
- each class rendered on evenly spaced frames with a random scanner look (``looks``): recall of
  each degradation, and ``diagnostic`` under the looks.

The training pool (``train.training_set``) is rendered once for all clips with per-sample seeds, so a
sample is the same in every fold it is used in; the phantom frames are the same in every fold (they
are no source). The held-out samples are another stream (``samples.STREAM_TEST``).

``--view`` runs the same recipe on another of the model's views (``view.set_view``): how the card's
scan-line trial was measured. The view is written into the run's ``config``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
import onnxruntime as ort
from torch import nn

from tools.modelkit.grouped import source_of
from tools.modelkit.pocus import DEFAULT_CACHE, EXCLUDED, FRAME_STEP, load_labels
from tools.modelkit.sessions import cpu_session
from tools.us_quality import LABELS
from tools.us_quality.data import ClipData, load_clips
from tools.us_quality.degrade import (
    GAIN_LOW_BASIS,
    SHADOW_MIN_ECHO,
    GainLowBasis,
    gain_low_basis,
    set_gain_low_basis,
    set_shadow_min_echo,
    shadow_min_echo,
)
from tools.us_quality.evaluate import predict, softmax
from tools.us_quality.fit import FitConfig, fit, predict_logits
from tools.us_quality.looks import (
    DEPTH_LOOK_P,
    RECT_CROP_P,
    depth_look,
    rect_crop,
    set_depth_look,
    set_rect_crop,
)
from tools.us_quality.quantize import INT8_CPU_FILE, INT8_FILE, quantize_file
from tools.us_quality.samples import STREAM_TEST, class_jobs, render
from tools.us_quality.sources import DARK_VARIANTS, darker
from tools.us_quality.train import TrainConfig, export_onnx, training_set
from tools.us_quality.view import VIEW, View, current_view, set_view, to_input

MIN_SOURCE_FRAMES = 20
FORMS = ("fp32", "int8", "int8_cpu")


@dataclass
class CVConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # the published model's recipe, per fold
    test_frames_per_clip: int = 8
    test_still_repeats: int = 2
    calib_samples: int = 200


def folds(clips: list[ClipData]) -> list[tuple[str, list[int]]]:
    """(fold name, indices of its held-out clips): one fold per source, the small sources together."""
    by_source: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        by_source.setdefault(source_of(c.record), []).append(i)
    if len(by_source) < 2:
        return []  # one source: nothing to hold out that the rest could be tested against
    big = {s: ix for s, ix in by_source.items() if sum(len(clips[i].frames) for i in ix) >= MIN_SOURCE_FRAMES}
    if not big:  # nothing but small sources: each is its own fold after all
        return sorted(by_source.items())
    small = sorted(i for s, ix in by_source.items() if s not in big for i in ix)
    out = sorted(big.items())
    if small:
        names = sorted({source_of(clips[i].record) for i in small})
        out.append(("small sources: " + ", ".join(names), small))
    return out


def fault_p(probs: np.ndarray) -> list[float]:
    """Per frame: the probability of the fault the arg-max calls, 0 where it calls ``diagnostic``."""
    top = probs.argmax(1)
    return [round(float(p[k]), 4) if k else 0.0 for k, p in zip(top, probs, strict=True)]


def _rounded(probs: np.ndarray) -> list[list[float]]:
    return [[round(float(p), 4) for p in row] for row in probs]


def _forms(model: nn.Module, work: Path, calib: np.ndarray) -> dict[str, ort.InferenceSession]:
    """FP32 torch model -> ONNX Runtime sessions of the FP32 file and both INT8 forms."""
    fp32 = work / "fp32.onnx"
    export_onnx(model, fp32, calib[:16])
    quantize_file(fp32, work / "int8.onnx", calib, INT8_FILE, [])
    quantize_file(fp32, work / "int8_cpu.onnx", calib, INT8_CPU_FILE, [])
    return {f: cpu_session(work / f"{f}.onnx") for f in FORMS}


def run(clips: list[ClipData], cfg: CVConfig, only: str | None = None) -> dict:
    """The folds' figures per held-out clip (see the module doc); no folds with a single source."""
    t0 = time.time()
    tc = cfg.train
    ts = training_set(clips, tc)
    x_pool, y_pool, clip_pool, ph = ts.x, ts.y, ts.clip, ts.phantom
    test_jobs = class_jobs(clips, cfg.test_frames_per_clip, cfg.test_still_repeats)
    x_test = render(clips, test_jobs, tc.seed, STREAM_TEST, tc.workers)
    y_test, clip_test = np.array([j.label for j in test_jobs]), np.array([j.clip for j in test_jobs])
    untouched = {
        v: [np.stack([to_input(darker(f, g, gm), c.mask) for f in c.frames]) for c in clips]
        for v, (g, gm) in DARK_VARIANTS.items()
    }
    print(f"rendered {len(x_pool)} + {len(x_test)} samples, {len(ph)} phantom: {time.time() - t0:.0f} s")
    result: dict = {
        "config": {
            **asdict(cfg),
            "view": current_view(),
            "rect_crop": rect_crop(),
            "depth_look_p": depth_look(),
            "gain_low_basis": gain_low_basis(),
            "shadow_min_echo": shadow_min_echo(),
        },
        "clips": {},
        "folds": [],
    }
    rng = np.random.default_rng(tc.seed)
    for name, held in folds(clips):
        if only and only not in name:
            continue
        tf = time.time()
        train_mask = ~np.isin(clip_pool, held)
        model, history = fit(tc.fit, x_pool[train_mask], y_pool[train_mask], ph.images, ph.labels)
        train_idx = np.flatnonzero(train_mask)
        calib = x_pool[rng.choice(train_idx, size=min(cfg.calib_samples, len(train_idx)), replace=False)]
        with tempfile.TemporaryDirectory() as tmp:
            sessions = _forms(model, Path(tmp), np.concatenate([calib, ph.images[: cfg.calib_samples // 3]]))
            for ci in held:
                c = clips[ci]
                row: dict = {"source": source_of(c.record), "fold": name, "frames": len(c.frames)}
                sel = clip_test == ci
                for form, sess in sessions.items():
                    probs = softmax(predict(sess, x_test[sel]))
                    pred = probs.argmax(1)
                    untouched_probs = {v: softmax(predict(sess, untouched[v][ci])) for v in DARK_VARIANTS}
                    row[form] = {
                        "untouched_diagnostic": {
                            v: int((pr.argmax(1) == 0).sum()) for v, pr in untouched_probs.items()
                        },
                        # per frame, the probability of the fault it is called (0: called diagnostic),
                        # so a fault floor can be applied afterwards (grouped_report.at_threshold)
                        "untouched_fault_p": {v: fault_p(pr) for v, pr in untouched_probs.items()},
                        # every class's probability, so other decision rules can be read afterwards
                        # (grouped_report.diagnostic_floor_rule)
                        "untouched_probs": {v: _rounded(pr) for v, pr in untouched_probs.items()},
                        "rendered_probs": _rounded(probs),
                        "rendered_top": [
                            [int(y), int(k), round(float(pr[k]), 4)]
                            for y, k, pr in zip(y_test[sel], pred, probs, strict=True)
                        ],
                        "rendered": {
                            lab: [int((pred[y_test[sel] == k] == k).sum()), int((y_test[sel] == k).sum())]
                            for k, lab in enumerate(LABELS)
                        },
                        "rendered_confusion": np.bincount(
                            y_test[sel] * len(LABELS) + pred, minlength=len(LABELS) ** 2
                        ).tolist(),
                    }
                row["torch_fp32_agrees"] = bool(
                    (
                        predict_logits(model, untouched["as is"][ci]).argmax(1)
                        == predict(sessions["fp32"], untouched["as is"][ci]).argmax(1)
                    ).all()
                )
                result["clips"][c.record.file] = row
        result["folds"].append(
            {
                "name": name,
                "held_out": [clips[i].record.file for i in held],
                "train_samples": int(train_mask.sum()),
                "history": history,
                "seconds": round(time.time() - tf, 1),
            }
        )
        print(f"fold {name}: {len(held)} clips held out, {time.time() - tf:.0f} s", flush=True)
    result["seconds"] = round(time.time() - t0, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.us_quality.grouped_cv", description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="the pocus_dev folder")
    p.add_argument("--out", type=Path, required=True, help="where to write the JSON (e.g. grouped_cv.json)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=FitConfig.steps)
    for flag, default, what in (
        (
            "--frames-per-clip",
            TrainConfig.frames_per_clip,
            "training pool: frames rendered per clip, each as every class",
        ),
        ("--still-repeats", TrainConfig.still_repeats, "training pool: renders per class of a still image"),
        ("--phantom-per-batch", FitConfig.phantom_per_batch, "phantom frames in each training batch"),
    ):
        p.add_argument(flag, type=int, default=default, help=what)
    p.add_argument(
        "--depth-look-p",
        type=float,
        default=DEPTH_LOOK_P,
        help="share of samples given a far field beyond the beam's reach (looks.set_depth_look)",
    )
    p.add_argument("--only", default=None, help="run only the folds whose name contains this")
    p.add_argument(
        "--view", choices=get_args(View), default=VIEW, help="the model's view (default: the recipe's)"
    )
    p.add_argument(
        "--rect-crop",
        type=float,
        default=RECT_CROP_P,
        help="share of fan samples cropped to a rectangle inside the fan (looks.set_rect_crop)",
    )
    p.add_argument(
        "--gain-low-basis",
        choices=get_args(GainLowBasis),
        default=GAIN_LOW_BASIS,
        help="what gain_low's black fraction is a fraction of (degrade.set_gain_low_basis)",
    )
    p.add_argument(
        "--shadow-min-echo",
        type=float,
        default=SHADOW_MIN_ECHO,
        help="share of the sector's echo a shadow must leave in view (degrade.set_shadow_min_echo)",
    )
    args = p.parse_args(argv)
    set_view(args.view)
    set_rect_crop(args.rect_crop)
    set_depth_look(args.depth_look_p)
    set_gain_low_basis(args.gain_low_basis)
    set_shadow_min_echo(args.shadow_min_echo)
    tc = TrainConfig(
        seed=args.seed,
        frames_per_clip=args.frames_per_clip,
        still_repeats=args.still_repeats,
        fit=FitConfig(seed=args.seed, steps=args.steps, phantom_per_batch=args.phantom_per_batch),
    )
    cfg = CVConfig(tc)
    files = [r.file for r in load_labels(args.data) if r.file not in EXCLUDED]
    res = run(load_clips(args.data, files, FRAME_STEP, args.cache), cfg, args.only)
    args.out.write_text(json.dumps(res, separators=(",", ":")) + "\n")  # ~6 MB indented: kept compact
    from tools.us_quality.grouped_report import summary

    print(summary(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
