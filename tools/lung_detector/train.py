"""Step 2, ``train``: the detector on phantom boxes plus weakly labelled real frames; ONNX export.

Each batch mixes phantom frames (full box labels: focal + GIoU losses) with real frames (clip
label only: the B-line score learns from them, see ``targets.weak_loss``). AdamW with a cosine
schedule after a short warm-up. Deterministic for a seed and a thread count.
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
from tools.lung_detector.dataset import BoxSet, Dataset, WeakSet
from tools.lung_detector.model import Detector
from tools.lung_detector.recipe import Recipe, normalize
from tools.lung_detector.targets import batch_targets, detection_loss, weak_loss
from tools.modelkit.training import export_checked, set_determinism

WARMUP_STEPS = 30


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W) -> normalized float32 (B, 1, H, W), the manifest's normalization."""
    return torch.from_numpy(normalize(images))


def _phantom_batch(bs: BoxSet, idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list, list]:
    images, boxes, classes = [], [], []
    for i in idx:
        b, c = bs.of(int(i))
        img, nb, keep = augment(bs.images[i], b, rng)
        images.append(img)
        boxes.append(nb)
        classes.append(c[keep])
    return np.stack(images), boxes, classes


def _weak_batch(ws: WeakSet, idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    empty = np.zeros((0, 4), np.float32)
    images = np.stack([augment(ws.images[i], empty, rng)[0] for i in idx])
    return images, ws.b_lines[idx]


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
) -> list[dict[str, float]]:
    """Train ``model`` in place for ``steps`` batches; returns the loss log (every 25 steps)."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=r.train.weight_decay)
    b_line = r.labels.index("b_line")
    n_real = min(r.train.real_per_batch, len(ds.real_train))
    n_phantom = r.train.batch - n_real
    history: list[dict[str, float]] = []
    model.train()
    t0 = time.time()
    # Real frames are drawn with B-line positive and negative clips balanced, so the few positive
    # clips are not drowned out.
    pos = np.flatnonzero(ds.real_train.b_lines == 1)
    neg = np.flatnonzero(ds.real_train.b_lines == 0)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr)
        idx = rng.choice(len(ds.phantom["train"]), n_phantom, replace=False)
        images, boxes, classes = _phantom_batch(ds.phantom["train"], idx, rng)
        raw = model.raw(to_tensor(images))
        grid_hw = (raw.shape[2], raw.shape[3])
        cls_t, box_t, pos_mask = batch_targets(boxes, classes, grid_hw, len(r.labels))
        loss, parts = detection_loss(raw, cls_t, box_t, pos_mask)
        if n_real:
            half = n_real // 2
            ridx = np.concatenate(
                [
                    rng.choice(pos, half) if len(pos) else rng.choice(neg, half),
                    rng.choice(neg, n_real - half) if len(neg) else rng.choice(pos, n_real - half),
                ]
            )
            rimg, rlab = _weak_batch(ds.real_train, ridx, rng)
            wl = weak_loss(model.raw(to_tensor(rimg)), torch.from_numpy(rlab), b_line)
            loss = loss + r.train.weak_weight * wl
            parts["weak"] = float(wl)
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


def train(r: Recipe, ds: Dataset, work: Path, log: Any = print) -> Path:
    set_determinism(r.seed, r.train.threads)
    model = Detector(len(r.labels))
    history = fit(model, ds, r, r.train.steps, r.train.lr, r.seed, log)
    torch.save(model.state_dict(), work / "fp32.pt")
    onnx_path = work / "fp32.onnx"
    diff = export_onnx(model, onnx_path, r.input_size)
    log(f"exported {onnx_path} (ONNX Runtime vs torch max abs diff {diff:.2e})")
    (work / "train_log.json").write_text(json.dumps({"history": history, "export_max_abs_diff": diff}) + "\n")
    return onnx_path
