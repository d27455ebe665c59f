"""Training (class-weighted cross-entropy on augmented films through the runtime's Preprocessor,
AdamW, one-cycle schedule), pruning with fine-tuning, and the two-output ONNX export."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tools.cxr_finding.augment import augment
from tools.cxr_finding.data import LABELS, Films
from tools.cxr_finding.model import Classifier
from tools.cxr_finding.view import INPUT_NAME, SIZE, normalize, to_input
from tools.modelkit.pruning import prune_filters
from tools.modelkit.sessions import cpu_session

OUTPUTS = ("logits", "heatmap")


@dataclass(frozen=True)
class Schedule:
    epochs: float = 3.0
    batch: int = 32
    lr: float = 3e-3
    prune_flops: float = 0.4
    finetune_epochs: float = 1.0


def fit(
    model: Classifier,
    films: Films,
    idx: np.ndarray,
    epochs: float,
    s: Schedule,
    lr: float,
    seed: int,
    log: Any,
) -> Classifier:
    rng = np.random.default_rng(seed)
    steps = max(1, int(epochs * len(idx) / s.batch))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    y_all = films.labels[idx]
    weight = torch.tensor(
        [len(y_all) / (2 * max(1, (y_all == c).sum())) for c in range(len(LABELS))], dtype=torch.float32
    )
    model.train()
    for step in range(steps):
        pick = rng.choice(idx, s.batch)
        x = normalize(np.stack([to_input(augment(films.images[i], rng)) for i in pick])[:, None])
        logits, _ = model(torch.from_numpy(x))
        loss = F.cross_entropy(logits, torch.from_numpy(films.labels[pick]), weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps}: loss {float(loss.detach()):.3f}")
    return model.eval()


def train(films: Films, idx: np.ndarray, s: Schedule, seed: int, log: Any = print) -> Classifier:
    torch.manual_seed(seed)
    return fit(Classifier(len(LABELS)), films, idx, s.epochs, s, s.lr, seed, log)


def pruned(
    model: Classifier, films: Films, idx: np.ndarray, s: Schedule, seed: int, log: Any = print
) -> tuple[Classifier, dict[str, Any]]:
    small = copy.deepcopy(model).eval()
    example = torch.zeros(1, 1, SIZE, SIZE)
    report = prune_filters(small, example, [small.cam], s.prune_flops, log)
    fit(small, films, idx, s.finetune_epochs, s, s.lr / 3, seed + 1, log)
    return small, report


def shift_decision(model: Classifier, threshold: float) -> None:
    """Move the pneumonia logit so that softmax's argmax calls pneumonia exactly where the
    probability before the shift reached ``threshold`` (the runtime reports the argmax label)."""
    with torch.no_grad():
        model.bias[1] -= float(np.log(threshold / (1 - threshold)))


def export(model: Classifier, path: Path, check: np.ndarray) -> float:
    """Two-output ONNX file (logits, heatmap); the max |ONNX Runtime - torch| over ``check``."""
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, SIZE, SIZE),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUTS),
        do_constant_folding=True,
    )
    sess = cpu_session(path)
    diff = 0.0
    with torch.no_grad():
        for x in check[:4]:
            want = [t.numpy() for t in model(torch.from_numpy(x[None]))]
            got = sess.run(list(OUTPUTS), {INPUT_NAME: x[None]})
            diff = max(diff, *(float(np.abs(g - w).max()) for g, w in zip(got, want)))
    return diff
