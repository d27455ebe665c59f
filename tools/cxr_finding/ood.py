"""Out of domain: the published model on adult films of the cxr_dev data set (see its SOURCE.md),
which it never saw (another country, adults, mostly bedside AP films with COVID-19 pneumonia, and
almost no normal films). Scored by the published decision (the manifest's argmax); per finding
label the share called pneumonia, and where the heatmap looks against the radiologists' lung boxes."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tools.cxr_finding.cam import called_maps, shares
from tools.cxr_finding.chain import scores
from tools.cxr_finding.view import inputs


def load_adult(data: Path) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """(finding per film, gray films, true lung boxes [2, 4] per film)."""
    rows = list(csv.DictReader((data / "metadata.csv").open(newline="")))
    coco = json.loads((data / "lungs_coco.json").read_text())
    ids = {im["file_name"]: im["id"] for im in coco["images"]}
    boxes: dict[int, list[list[float]]] = defaultdict(list)
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        boxes[a["image_id"]].append([x, y, x + w, y + h])
    findings, films, truth = [], [], []
    for r in rows:
        name = Path(r["file"]).name
        gray = cv2.imread(str(data / "images" / name), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise ValueError(f"{data / 'images' / name}: not a readable image")
        findings.append(r["finding"])
        films.append(gray)
        truth.append(np.array(boxes.get(ids.get(name, -1), []), np.float32).reshape(-1, 4))
    return findings, films, truth


def score_adults(model_files: dict[str, Path], data: Path) -> dict[str, Any]:
    findings, films, truth = load_adult(data)
    x = inputs(films)  # each film at its own size, as the runtime gets it
    out: dict[str, Any] = {"films": len(films), "variants": {}}
    for variant, path in model_files.items():
        p, heat = scores(path, x, heatmaps=True)
        per: dict[str, Any] = {}
        for name in sorted(set(findings)):
            m = np.array([f == name for f in findings])
            per[name] = {
                "films": int(m.sum()),
                "called_pneumonia": int((p[m] >= 0.5).sum()),
                "mean_p": float(p[m].mean()),
            }
        out["variants"][variant] = per
        if heat is not None and variant == "fp32":
            maps = called_maps(heat, p >= 0.5, (224, 224))
            scaled = [
                b * np.array([224 / f.shape[1], 224 / f.shape[0]] * 2, np.float32)
                for b, f in zip(truth, films)
            ]
            out["cam"] = shares(maps, scaled)
    return out
