"""Step ``train``: the published model, trained on every source with the recipe the grouped
cross-validation measures (``grouped_cv`` trains each fold with this same ``TrainConfig``).

The training set is a fixed pool: every class rendered on evenly spaced frames of every clip
(stills several times), each with a random scanner look and geometry (``looks``), through the
model's view (``view``); plus phantom frames labelled from the phantom's truth. Degrading full-size
frames costs ~25 ms each, too slow to redo every step on a 2-core machine; flips are added per batch.
There is no validation split and no model selection: the weights after ``fit.steps`` steps are kept.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tools.modelkit.training import export_checked
from tools.us_quality import LABELS
from tools.us_quality.data import ClipData
from tools.us_quality.fit import FitConfig, fit
from tools.us_quality.model import n_params
from tools.us_quality.phantom import PhantomSet, phantom_set
from tools.us_quality.preprocess import SIZE, normalize
from tools.us_quality.samples import STREAM_TRAIN, class_jobs, render

CHECKPOINT = "model.pt"
FP32_FILE = "us-quality-fp32.onnx"


@dataclass
class TrainConfig:
    seed: int = 0
    frames_per_clip: int = 30  # evenly spaced frames per clip, each rendered as every class
    still_repeats: int = 6  # a still is one frame: rendered this many times per class
    phantom_scenes: int = 600  # training scenes (2 frames each)
    workers: int = 2
    fit: FitConfig = field(default_factory=FitConfig)


@dataclass
class TrainingSet:
    x: np.ndarray  # (N, SIZE, SIZE) uint8 rendered real samples
    y: np.ndarray  # (N,) class index
    clip: np.ndarray  # (N,) index of the clip each sample was rendered from
    phantom: PhantomSet


def training_set(clips: list[ClipData], cfg: TrainConfig) -> TrainingSet:
    jobs = class_jobs(clips, cfg.frames_per_clip, cfg.still_repeats)
    x = render(clips, jobs, cfg.seed, STREAM_TRAIN, cfg.workers)
    ph = phantom_set("train", cfg.phantom_scenes, cfg.seed, cfg.workers)
    return TrainingSet(x, np.array([j.label for j in jobs]), np.array([j.clip for j in jobs]), ph)


def train(cfg: TrainConfig, clips: list[ClipData], out_dir: Path, work_dir: Path) -> dict:
    t0 = time.time()
    ts = training_set(clips, cfg)
    t_render = time.time() - t0
    print(
        f"rendered {len(ts.x)} real samples and {len(ts.phantom)} phantom frames in {t_render:.0f} s",
        flush=True,
    )
    model, history = fit(cfg.fit, ts.x, ts.y, ts.phantom.images, ts.phantom.labels)
    work_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), work_dir / CHECKPOINT)
    out_dir.mkdir(parents=True, exist_ok=True)
    diff = export_onnx(model, out_dir / FP32_FILE, ts.x[:: max(1, len(ts.x) // 64)][:64])
    print(f"ONNX export: max |ORT - torch| = {diff:.3e}", flush=True)
    log = {
        "config": asdict(cfg),
        "params": n_params(model),
        "train_samples": len(ts.x),
        "train_per_class": np.bincount(ts.y, minlength=len(LABELS)).tolist(),
        "clips": len(clips),
        "decoded_frames": int(sum(len(c.frames) for c in clips)),
        "history": history,
        "phantom_train_frames": len(ts.phantom),
        "phantom_train_per_class": np.bincount(ts.phantom.labels, minlength=len(LABELS)).tolist(),
        "onnx_max_abs_diff": diff,
        "render_s": round(t_render, 1),
        "train_s": round(time.time() - t0, 1),
        "torch": torch.__version__,
    }
    (out_dir / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    return log


def export_onnx(model: nn.Module, path: Path, check: np.ndarray) -> float:
    """Export with a static batch of 1; return the max |ORT - torch| logit difference on ``check``."""
    feeds = (normalize(s)[None, None] for s in check)
    return export_checked(model, path, (1, 1, SIZE, SIZE), "input", "logits", feeds)
