"""Training on rendered samples of the training clips plus phantom frames, model selection on the
validation clips and phantom validation scenes, and export to ONNX (checked against torch in ONNX Runtime).

The training set is a fixed pool of rendered samples (degrading full-size frames costs ~10 ms
each, too slow to redo every epoch on a 2-core machine); left-right flips are added per batch.
Every batch holds ``phantom_per_batch`` phantom frames and the rest real samples, so the phantom
share is the same in each batch (~30%) and an epoch is one pass over the real pool.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tools.modelkit.training import export_checked, set_determinism
from tools.us_quality import LABELS
from tools.us_quality.data import ClipData
from tools.us_quality.evaluate import scores
from tools.us_quality.model import QualityNet, n_params
from tools.us_quality.phantom import PhantomSet, phantom_set
from tools.us_quality.preprocess import normalize
from tools.us_quality.samples import STREAM_TRAIN, STREAM_VAL, grid_jobs, random_jobs, render

CHECKPOINT = "model.pt"
FP32_FILE = "us-quality-fp32.onnx"


@dataclass
class TrainConfig:
    seed: int = 0
    epochs: int = 14
    pool_size: int = 10000  # rendered training samples (balanced over classes)
    max_frames_per_clip: int = 80
    val_frames_per_clip: int = 16
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    threads: int = 2
    workers: int = 2
    phantom_scenes: int = 1200  # training scenes (FRAMES_PER_SCENE frames each)
    phantom_val_scenes: int = 200
    phantom_per_batch: int = 20  # of batch_size; the rest are real samples


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(normalize(x)[:, None])


@torch.no_grad()
def _predict(model: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    return np.concatenate([model(_tensor(x[i : i + batch])).numpy() for i in range(0, len(x), batch)])


def train(
    cfg: TrainConfig, train_clips: list[ClipData], val_clips: list[ClipData], out_dir: Path, work_dir: Path
) -> dict:
    t_start = time.time()
    set_determinism(cfg.seed, cfg.threads)
    jobs = random_jobs(train_clips, cfg.pool_size, cfg.seed, STREAM_TRAIN, cfg.max_frames_per_clip)
    x_train = render(train_clips, jobs, cfg.seed, STREAM_TRAIN, cfg.workers)
    y_train = torch.tensor([j.label for j in jobs])
    vjobs = grid_jobs(val_clips, cfg.val_frames_per_clip)
    x_val = render(val_clips, vjobs, cfg.seed, STREAM_VAL, cfg.workers)
    y_val = np.array([j.label for j in vjobs])
    p_train = phantom_set("train", cfg.phantom_scenes, cfg.seed, cfg.workers)
    p_val = phantom_set("val", cfg.phantom_val_scenes, cfg.seed, cfg.workers)
    t_render = time.time() - t_start
    print(
        f"rendered {len(x_train)} train / {len(x_val)} val samples, phantom {len(p_train)} train / "
        f"{len(p_val)} val frames in {t_render:.0f} s",
        flush=True,
    )

    model = QualityNet(len(LABELS))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_all, xp_all, yp_all = _tensor(x_train), _tensor(p_train.images), torch.from_numpy(p_train.labels)
    n_phantom = min(cfg.phantom_per_batch, len(p_train))
    n_real = cfg.batch_size - n_phantom
    steps = cfg.epochs * ((len(x_train) + n_real - 1) // n_real)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    history, best_f1, best_state = [], -1.0, None
    p_order, p_pos = torch.randperm(len(xp_all), generator=gen), 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(order), n_real):
            idx = order[i : i + n_real]
            xb, yb = x_all[idx], y_train[idx]
            if n_phantom:  # the phantom share, cycling through the phantom pool
                if p_pos + n_phantom > len(p_order):
                    p_order, p_pos = torch.randperm(len(xp_all), generator=gen), 0
                pidx = p_order[p_pos : p_pos + n_phantom]
                p_pos += n_phantom
                xb, yb = torch.cat([xb, xp_all[pidx]]), torch.cat([yb, yp_all[pidx]])
            flip = torch.rand(len(yb), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach().item() * len(yb)
            seen += len(yb)
        val = scores(y_val, _predict(model, x_val).argmax(1))
        pval = _phantom_f1(model, p_val)
        loss_avg = total / seen
        # Selection weighs real and phantom validation equally: neither may be given up for the other.
        f1 = (float(val["macro_f1"]) + pval) / 2 if len(p_val) else float(val["macro_f1"])  # type: ignore[arg-type]
        history.append(
            {
                "epoch": epoch + 1,
                "loss": round(loss_avg, 4),
                "val_macro_f1": val["macro_f1"],
                "phantom_val_macro_f1": round(pval, 4),
                "selection": round(f1, 4),
            }
        )
        print(
            f"epoch {epoch + 1}/{cfg.epochs} loss {loss_avg:.4f} val macro-F1 {val['macro_f1']:.4f} "
            f"phantom val macro-F1 {pval:.4f} ({time.time() - t_start:.0f} s)",
            flush=True,
        )
        if f1 >= best_f1:  # ties go to the later epoch (lower learning rate)
            best_f1, best_state = f1, {k: v.clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    work_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), work_dir / CHECKPOINT)
    out_dir.mkdir(parents=True, exist_ok=True)
    diff = export_onnx(model, out_dir / FP32_FILE, x_val[:64])
    print(f"ONNX export: max |ORT - torch| over {min(64, len(x_val))} frames = {diff:.3e}", flush=True)
    val_best = scores(y_val, _predict(model, x_val).argmax(1))
    log = {
        "config": asdict(cfg),
        "params": n_params(model),
        "train_samples": len(x_train),
        "val_samples": len(x_val),
        "history": history,
        "best_epoch": max(history, key=lambda h: (h["selection"], h["epoch"]))["epoch"],
        "selection": "mean of real validation macro-F1 and phantom validation macro-F1",
        "val": val_best,
        "phantom_val_macro_f1": round(_phantom_f1(model, p_val), 4),
        "phantom_train_frames": len(p_train),
        "phantom_val_frames": len(p_val),
        "phantom_train_per_class": np.bincount(p_train.labels, minlength=len(LABELS)).tolist(),
        "onnx_max_abs_diff": diff,
        "decoded_frames": int(sum(len(c.frames) for c in train_clips + val_clips)),
        "natural_shadow_frames": int(sum((~c.diagnostic_ok).sum() for c in train_clips + val_clips)),
        "render_s": round(t_render, 1),
        "train_s": round(time.time() - t_start, 1),
        "torch": torch.__version__,
    }
    (out_dir / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    return log


def _phantom_f1(model: nn.Module, ps: PhantomSet) -> float:
    if not len(ps):
        return 0.0
    return float(scores(ps.labels, _predict(model, ps.images).argmax(1))["macro_f1"])  # type: ignore[arg-type]


def export_onnx(model: nn.Module, path: Path, check: np.ndarray) -> float:
    """Export with a static batch of 1; return the max |ORT - torch| logit difference on ``check``."""
    feeds = (normalize(s)[None, None] for s in check)
    return export_checked(model, path, (1, 1, 128, 128), "input", "logits", feeds)
