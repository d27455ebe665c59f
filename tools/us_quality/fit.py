"""The training loop shared by the published model and every cross-validation fold.

A fixed number of steps (no model selection on held-out data, so nothing about a test fold can
leak into which weights are kept), AdamW with a one-cycle schedule, label smoothing, left-right
flips per batch, and a fixed phantom share in every batch. Small and single-threaded by default:
a fold trains in about two minutes on one CPU core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tools.modelkit.training import set_determinism
from tools.us_quality import LABELS
from tools.us_quality.model import QualityNet
from tools.us_quality.preprocess import normalize


@dataclass
class FitConfig:
    seed: int = 0
    steps: int = 800
    batch_size: int = 64
    phantom_per_batch: int = 16  # of batch_size; the rest are rendered real samples
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    threads: int = 1


def tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(normalize(x)[:, None])


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    if not len(x):
        return np.zeros((0, len(LABELS)), np.float32)
    return np.concatenate([model(tensor(x[i : i + batch])).numpy() for i in range(0, len(x), batch)])


def fit(
    cfg: FitConfig, x: np.ndarray, y: np.ndarray, xp: np.ndarray, yp: np.ndarray, log_every: int = 100
) -> tuple[nn.Module, list[dict]]:
    """Train a fresh QualityNet on real samples ``x, y`` and phantom frames ``xp, yp`` (uint8 128x128)."""
    set_determinism(cfg.seed, cfg.threads)
    model = QualityNet(len(LABELS))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    gen = torch.Generator().manual_seed(cfg.seed)
    xr, yr = tensor(x), torch.from_numpy(np.asarray(y, np.int64))
    xph, yph = tensor(xp), torch.from_numpy(np.asarray(yp, np.int64))
    n_ph = min(cfg.phantom_per_batch, len(xph))
    n_real = cfg.batch_size - n_ph
    history: list[dict] = []
    total, seen = 0.0, 0
    model.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(xr), (n_real,), generator=gen)
        xb, yb = xr[idx], yr[idx]
        if n_ph:
            pidx = torch.randint(0, len(xph), (n_ph,), generator=gen)
            xb, yb = torch.cat([xb, xph[pidx]]), torch.cat([yb, yph[pidx]])
        flip = torch.rand(len(yb), generator=gen) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach()) * len(yb)
        seen += len(yb)
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            history.append({"step": step + 1, "loss": round(total / seen, 4)})
            total, seen = 0.0, 0
    model.eval()
    return model, history
