"""Where the heatmap looks: the share of each film's class-activation mass (the called class's map,
positive part, resized to the film) inside the lung fields and inside the border band and corners
where markers and text sit, each beside that region's share of the area (what a map that looked
everywhere alike would give). The lung fields are boxed by a published cxr-lungs model, run as the
runtime runs it (its manifest's input, the runtime's Preprocessor and YOLO decode)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.inference.manifest import load_manifest
from edge.inference.preprocess import Preprocessor
from edge.inference.tasks.detection import decode_yolo
from tools.modelkit.sessions import cpu_session

BORDER = 0.10  # band of each side
CORNER = 0.20  # square of each corner
MIN_SCORE = 0.25


def region_masks(h: int, w: int) -> dict[str, np.ndarray]:
    by, bx, cy, cx = int(BORDER * h), int(BORDER * w), int(CORNER * h), int(CORNER * w)
    border = np.ones((h, w), bool)
    border[by : h - by, bx : w - bx] = False
    corners = np.zeros((h, w), bool)
    for ys in (slice(0, cy), slice(h - cy, h)):
        for xs in (slice(0, cx), slice(w - cx, w)):
            corners[ys, xs] = True
    return {"border band (10%)": border, "corners (20% squares)": corners}


def lung_boxes(folder: Path, images: list[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Per film, the boxes (xyxy, film pixels) of each lung field the detector found (score >= 0.25)."""
    m = load_manifest(folder).manifest
    path, _, _ = load_manifest(folder).verified_file("fp32")
    pre = Preprocessor(m.input)
    sess = cpu_session(path)
    out = []
    for gray in images:
        x, t = pre(gray)
        raw = sess.run(None, {m.input.name: x})[0]
        boxes, scores, classes = decode_yolo(raw, len(m.labels), MIN_SCORE)
        best = [
            boxes[classes == c][np.argmax(scores[classes == c])]
            for c in range(len(m.labels))
            if (classes == c).any()
        ]
        out.append(t.to_frame(np.array(best, np.float32).reshape(-1, 4)))
    return out


def called_maps(heat: np.ndarray, called: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """[n, H, W] positive part of the called class's map, bilinearly resized to the film."""
    h, w = hw
    return np.stack(
        [
            cv2.resize(heat[i, int(c)].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR).clip(0)
            for i, c in enumerate(called)
        ]
    )


def shares(maps: np.ndarray, boxes: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Mean share of CAM mass per region (and the region's share of the area); films with no mass skipped."""
    n, h, w = maps.shape
    masks = region_masks(h, w)
    total = maps.reshape(n, -1).sum(axis=1)
    ok = total > 0
    out: dict[str, Any] = {"films": int(ok.sum())}
    for name, m in masks.items():
        out[name] = {"mass": float((maps[:, m].sum(axis=1)[ok] / total[ok]).mean()), "area": float(m.mean())}
    if boxes is not None:
        mass, area, found = [], [], 0
        for i in np.flatnonzero(ok):
            if len(boxes[i]) < 2:
                continue
            found += 1
            lm = np.zeros((h, w), bool)
            for x0, y0, x1, y1 in boxes[i]:
                lm[max(0, int(y0)) : int(np.ceil(y1)), max(0, int(x0)) : int(np.ceil(x1))] = True
            mass.append(maps[i][lm].sum() / total[i])
            area.append(lm.mean())
        out["lung fields (both boxed)"] = {
            "mass": float(np.mean(mass)) if mass else None,
            "area": float(np.mean(area)) if area else None,
            "films_with_both_fields": found,
        }
    return out
