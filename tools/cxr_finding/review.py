"""The review band and the heatmap check, both from the out-of-fold scores (``cv``'s oof.npz).

Review band: each fold's threshold moves its scores the way the published model's bias does (the
runtime calls pneumonia where the shifted probability reaches 0.5); a film whose called class has a
shifted probability under ``REVIEW_BELOW`` gets the review flag. Declared before the figures were seen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tools.cxr_finding.cam import called_maps, lung_boxes, shares
from tools.cxr_finding.data import Films

REVIEW_BELOW = 0.8
MAP_SIDE = 112  # maps resized to the model input, not the 224 px film: memory for 5,000 films


def shifted(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P(pneumonia) after folding threshold ``t`` into the bias: 0.5 where p == t."""
    p = p.clip(1e-7, 1 - 1e-7)
    z = np.log(p / (1 - p)) - np.log(t / (1 - t))
    return 1 / (1 + np.exp(-z))


def review_band(films: Films, p: np.ndarray, t: np.ndarray) -> dict[str, Any]:
    q = shifted(p, t)
    called = q >= 0.5
    conf = np.where(called, q, 1 - q)
    flag = conf < REVIEW_BELOW
    right = called == (films.labels == 1)
    return {
        "review_below": REVIEW_BELOW,
        "flagged_share": float(flag.mean()),
        "accuracy_flagged": float(right[flag].mean()) if flag.any() else None,
        "accuracy_not_flagged": float(right[~flag].mean()) if (~flag).any() else None,
        "errors_flagged_share": float(flag[~right].mean()) if (~right).any() else None,
    }


def heatmap_check(work: Path, films: Films, lungs: Path | None) -> dict[str, Any]:
    z = np.load(work / "oof.npz")
    called = shifted(z["p_fp32"], z["t_fp32"]) >= 0.5
    side = MAP_SIDE
    maps = called_maps(z["heat"], called, (side, side))
    scale = np.array([side / films.images.shape[2], side / films.images.shape[1]] * 2, np.float32)
    boxes = [b * scale for b in lung_boxes(lungs, films.images)] if lungs is not None else None
    out: dict[str, Any] = {"all": shares(maps, boxes)}
    for name, m in (("called pneumonia", called), ("called normal", ~called)):
        out[name] = shares(maps[m], [b for b, k in zip(boxes, m) if k] if boxes is not None else None)
    if boxes is not None:
        out["lung_detector_found_both"] = float(np.mean([len(b) == 2 for b in boxes]))
    return out
