"""Out-of-fold boxes on films changed the way other hospitals and bad positioning change them: each
fold's INT8 CPU model (what the runtime runs on a CPU) on its own held-out films, as is and cut at one
edge (the field on that side partly outside the film), rotated, darker and brighter. Truth boxes are
moved and clipped with the film; a field cut to under a quarter of its size counts as absent, and the
rate of boxes still reported for it (score >= 0.25) is shown. Boxes are clipped to the film, as the
runtime's detection task clips them (a field running off the film then touches its edge, which the
positioning check reads as cut off). Written to ``stress.json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tools.cxr_lungs import metrics
from tools.cxr_lungs.augment import MIN_VISIBLE
from tools.cxr_lungs.data import LABELS, Films
from tools.modelkit.patients import patient_folds

Change = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _cut(side: str, share: float) -> Change:
    def change(gray: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = gray.shape
        x0, y0, x1, y1 = 0, 0, w, h
        if side == "left":
            x0 = int(share * w)
        elif side == "right":
            x1 = int((1 - share) * w)
        elif side == "top":
            y0 = int(share * h)
        else:
            y1 = int((1 - share) * h)
        b = boxes - np.array([x0, y0, x0, y0], np.float32)
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, x1 - x0)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, y1 - y0)
        return gray[y0:y1, x0:x1].copy(), b

    return change


def _rotate(angle: float) -> Change:
    def change(gray: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = gray.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out = cv2.warpAffine(gray, m, (w, h), borderValue=0)
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        c = c @ m[:, :2].T + m[:, 2]
        half = (boxes[:, 2:] - boxes[:, :2]) / 2
        return out, np.concatenate([c - half, c + half], axis=1).astype(np.float32)

    return change


def _gamma(g: float) -> Change:
    lut = (255 * (np.arange(256) / 255.0) ** g).astype(np.uint8)
    return lambda gray, boxes: (cv2.LUT(gray, lut), boxes)


CHANGES: dict[str, Change] = {
    "as is": lambda gray, boxes: (gray, boxes),
    "cut 30% at the image left": _cut("left", 0.3),
    "cut 30% at the image right": _cut("right", 0.3),
    "cut 25% at the top": _cut("top", 0.25),
    "cut 25% at the bottom": _cut("bottom", 0.25),
    "rotated 8 degrees": _rotate(8.0),
    "darker (gamma 1.8)": _gamma(1.8),
    "brighter (gamma 0.55)": _gamma(0.55),
}


EDGE = 0.02  # a box side within 2% of the film's size from its edge touches it


def _at_edge(box: np.ndarray, w: int, h: int) -> bool:
    x0, y0, x1, y1 = (float(v) for v in box)
    return x0 <= EDGE * w or y0 <= EDGE * h or x1 >= (1 - EDGE) * w or y1 >= (1 - EDGE) * h


def run(films: Films, k: int, seed: int, work: Path, variant: str = "int8-cpu") -> dict[str, Any]:
    """Per change and field: mean IoU where the field is still on the film, and the share of films
    where a field cut off the film is still reported (score >= 0.25)."""
    fold_of = patient_folds(films.patients, k, seed)
    out: dict[str, Any] = {"variant": variant, "changes": {}}
    for name, change in CHANGES.items():
        ious: dict[str, list[float]] = {lab: [] for lab in LABELS}
        ghosts: dict[str, list[bool]] = {lab: [] for lab in LABELS}
        edge: dict[str, list[tuple[bool, bool]]] = {lab: [] for lab in LABELS}  # (box, truth) at an edge
        for f in range(k):
            te = np.flatnonzero(fold_of == f)
            changed = [change(films.images[i], films.boxes[i]) for i in te]
            test = Films([], [], [], [], [g for g, _ in changed], [b for _, b in changed])
            preds = metrics.predict(work / f"fold{f}" / f"{variant}.onnx", test)
            for i in range(len(te)):
                seen = (test.boxes[i][:, 2:] - test.boxes[i][:, :2]) / np.maximum(
                    films.boxes[te[i]][:, 2:] - films.boxes[te[i]][:, :2], 1e-3
                )
                h, w = test.images[i].shape
                for c, lab in enumerate(LABELS):
                    p = preds[i]
                    p.boxes[c] = p.boxes[c].copy()
                    p.boxes[c][:, [0, 2]] = p.boxes[c][:, [0, 2]].clip(
                        0, w
                    )  # as the runtime clips to the frame
                    p.boxes[c][:, [1, 3]] = p.boxes[c][:, [1, 3]].clip(0, h)
                    if len(p.boxes[c]) and p.scores[c][0] >= 0.25:
                        edge[lab].append((_at_edge(p.boxes[c][0], w, h), _at_edge(test.boxes[i][c], w, h)))
                    if (seen[c] >= MIN_VISIBLE).all():
                        ious[lab].append(
                            float(metrics.iou(p.boxes[c][:1], test.boxes[i][c])[0])
                            if len(p.boxes[c])
                            else 0.0
                        )
                    else:
                        ghosts[lab].append(bool(len(p.scores[c]) and p.scores[c][0] >= 0.25))
        out["changes"][name] = {
            lab: {
                "mean_iou": float(np.mean(ious[lab])) if ious[lab] else None,
                "films": len(ious[lab]),
                "cut_off_films": len(ghosts[lab]),
                "cut_off_still_reported": float(np.mean(ghosts[lab])) if ghosts[lab] else None,
                "box_at_edge": float(np.mean([b for b, _ in edge[lab]])) if edge[lab] else None,
                "truth_at_edge": float(np.mean([t for _, t in edge[lab]])) if edge[lab] else None,
            }
            for lab in LABELS
        }
    (work / "stress.json").write_text(json.dumps(out, indent=2) + "\n")
    return out
