"""Training: augmented films through the runtime's Preprocessor, AdamW with a cosine schedule, then
export to ONNX (the runtime's YOLO layout) checked against torch."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tools.cxr_lungs.augment import augment
from tools.cxr_lungs.data import LABELS, Films
from tools.cxr_lungs.loss import assign, loss
from tools.cxr_lungs.model import STRIDE, Detector
from tools.cxr_lungs.view import INPUT_NAME, SIZE, normalize, to_input
from tools.modelkit.pruning import prune_filters
from tools.modelkit.training import export_checked

OUTPUT_NAME = "output0"


@dataclass(frozen=True)
class Schedule:
    steps: int = 500
    batch: int = 16
    lr: float = 3e-3
    prune_flops: float = 0.4
    finetune_steps: int = 150


def sample(films: Films, idx: np.ndarray, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """n augmented inputs (float32 [n, 1, SIZE, SIZE]), boxes in input pixels [n, 2, 4], present [n, 2]."""
    xs, bs, ps = [], [], []
    for i in rng.choice(idx, n):
        gray, boxes, present = augment(films.images[i], films.boxes[i], rng)
        small, t = to_input(gray)
        xs.append(small)
        bs.append(t.to_input(boxes).clip(0, SIZE))
        ps.append(present)
    return normalize(np.stack(xs)[:, None]), np.stack(bs), np.stack(ps)


def plain_inputs(films: Films, idx: np.ndarray) -> np.ndarray:
    """The films as the runtime feeds them (no augmentation), float32 [n, 1, SIZE, SIZE]."""
    return normalize(np.stack([to_input(films.images[i])[0] for i in idx])[:, None])


def fit(
    model: Detector, films: Films, idx: np.ndarray, steps: int, batch: int, lr: float, seed: int, log: Any
) -> Detector:
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    grid = SIZE // STRIDE
    model.train()
    for step in range(steps):
        x, boxes, present = sample(films, idx, rng, batch)
        parts = [assign(b, p, grid, len(LABELS)) for b, p in zip(boxes, present)]
        cls_t, box_t, pos = (torch.from_numpy(np.stack([p[k] for p in parts])) for k in range(3))
        total = loss(model.raw(torch.from_numpy(x)), cls_t, box_t, pos)
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps}: loss {float(total.detach()):.3f}")
    return model.eval()


def train(films: Films, idx: np.ndarray, s: Schedule, seed: int, log: Any = print) -> Detector:
    torch.manual_seed(seed)
    return fit(Detector(len(LABELS)), films, idx, s.steps, s.batch, s.lr, seed, log)


def pruned(
    model: Detector, films: Films, idx: np.ndarray, s: Schedule, seed: int, log: Any = print
) -> tuple[Detector, dict[str, Any]]:
    """A pruned copy of ``model`` fine-tuned on the same films; the pruning figures."""
    small = copy.deepcopy(model)
    report = prune_filters(small, torch.zeros(1, 1, SIZE, SIZE), [small.head], s.prune_flops, log)
    fit(small, films, idx, s.finetune_steps, s.batch, s.lr / 3, seed + 1, log)
    return small, report


def export(model: Detector, path: Path, check: np.ndarray) -> float:
    """ONNX file for the runtime; the max |ONNX Runtime - torch| on ``check`` inputs."""
    return export_checked(
        model, path, (1, 1, SIZE, SIZE), INPUT_NAME, OUTPUT_NAME, [c[None] for c in check[:4]]
    )
