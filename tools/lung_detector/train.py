"""Step 2, ``train``: the detector on phantom boxes plus real frames with the teacher's boxes; ONNX export.

Each batch mixes phantom frames with real frames of the clips it may train on (a fold's training
sources; all labelled clips for the published model), drawn with B-line positive and negative
clips balanced; both carry boxes (the real ones from ``pseudo_labels``), trained with focal loss on
classes and GIoU + log-size L1 on boxes. AdamW with a cosine schedule after a short warm-up.
Deterministic for a seed and a thread count.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tools.lung_detector.augment import augment
from tools.lung_detector.dataset import BoxSet, Dataset
from tools.lung_detector.model import Detector
from tools.lung_detector.recipe import Recipe, normalize
from tools.lung_detector.targets import batch_targets, detection_loss
from tools.modelkit.training import export_checked, set_determinism

WARMUP_STEPS = 30


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W) -> normalized float32 (B, 1, H, W), the manifest's normalization."""
    return torch.from_numpy(normalize(images))


def _box_batch(bs: BoxSet, idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list, list]:
    images, boxes, classes = [], [], []
    for i in idx:
        b, c = bs.of(int(i))
        img, nb, keep = augment(bs.images[i], b, rng)
        images.append(img)
        boxes.append(nb)
        classes.append(c[keep])
    return np.stack(images), boxes, classes


def lr_at(step: int, total: int, base: float) -> float:
    if step < WARMUP_STEPS:
        return base * (step + 1) / WARMUP_STEPS
    t = (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def fit(
    model: Detector,
    ds: Dataset,
    r: Recipe,
    steps: int,
    lr: float,
    seed: int,
    log: Any = print,
    tag: str = "train",
    train_clips: set[str] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place for ``steps`` batches on the phantom and the real frames of
    ``train_clips`` (every labelled clip if None); returns the loss log (every 25 steps)."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=r.train.weight_decay)
    real = ds.real
    usable = real.indices(train_clips, trainable=True)
    clip_label = real.b_lines[real.clip[usable]]
    pos, neg = usable[clip_label == 1], usable[clip_label == 0]
    n_real = min(r.train.real_per_batch, len(usable))
    n_phantom = r.train.batch - n_real
    history: list[dict[str, float]] = []
    model.train()
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr)
        idx = rng.choice(len(ds.phantom["train"]), n_phantom, replace=False)
        images, boxes, classes = _box_batch(ds.phantom["train"], idx, rng)
        if n_real:
            # B-line positive and negative clips balanced, so the few positive clips are not drowned out
            half = n_real // 2 if len(pos) and len(neg) else (n_real if len(pos) else 0)
            ridx = np.concatenate([rng.choice(pos, half), rng.choice(neg, n_real - half)]).astype(int)
            rimg, rbox, rcls = _box_batch(real.frames, ridx, rng)
            images = np.concatenate([images, rimg])
            boxes, classes = boxes + rbox, classes + rcls
        raw = model.raw(to_tensor(images))
        grid_hw = (raw.shape[2], raw.shape[3])
        cls_t, box_t, pos_mask = batch_targets(boxes, classes, grid_hw, len(r.labels))
        loss, parts = detection_loss(raw, cls_t, box_t, pos_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            entry = {"step": step, "loss": float(loss), **parts, "lr": lr_at(step, steps, lr)}
            history.append(entry)
            log(
                f"{tag} step {step + 1}/{steps} loss {float(loss):.3f} "
                + " ".join(f"{k} {v:.3f}" for k, v in parts.items())
                + f" ({time.time() - t0:.0f} s)"
            )
    model.eval()
    return history


def export_onnx(model: nn.Module, path: Path, size: int) -> float:
    """Export (BatchNorm folded) and check ONNX Runtime against torch; returns the max abs diff."""
    x = np.random.default_rng(0).normal(size=(1, 1, size, size)).astype(np.float32)
    return export_checked(model, path, (1, 1, size, size), "images", "output0", [x])  # Ultralytics' names


def train(r: Recipe, ds: Dataset, work: Path, log: Any = print, train_clips: set[str] | None = None) -> Path:
    set_determinism(r.seed, r.train.threads)
    model = Detector(len(r.labels))
    history = fit(model, ds, r, r.train.steps, r.train.lr, r.seed, log, train_clips=train_clips)
    torch.save(model.state_dict(), work / "fp32.pt")
    onnx_path = work / "fp32.onnx"
    diff = export_onnx(model, onnx_path, r.input_size)
    log(f"exported {onnx_path} (ONNX Runtime vs torch max abs diff {diff:.2e})")
    (work / "train_log.json").write_text(json.dumps({"history": history, "export_max_abs_diff": diff}) + "\n")
    return onnx_path
