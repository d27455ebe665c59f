"""The cxr_dev data set (see its SOURCE.md): chest films, radiologist lung boxes (COCO), patient ids.

COCO names the fields by the patient's side ("Right Lung", "Left Lung"); on a PA or AP film the
patient's right lung is on the image's left. Labels are ``LABELS`` in that order; a film whose right
lung box lies right of its left lung box is counted (``Films.side_swaps``), never silently fixed.
Decoded films are cached as npz (long side ``CACHE_SIDE``), keyed by file size and mtime.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

LABELS = ("lung_right", "lung_left")
COCO_NAMES = {"right lung": 0, "left lung": 1}
CACHE_SIDE = 320  # 2.5x the 128 px input: enough detail, cheap to augment


@dataclass
class Films:
    files: list[str]
    patients: list[str]
    views: list[str]
    findings: list[str]
    images: list[np.ndarray]  # gray uint8, long side <= CACHE_SIDE
    boxes: list[np.ndarray]  # [2, 4] xyxy in the cached image's pixels, rows in LABELS order
    side_swaps: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, idx: np.ndarray) -> Films:
        pick = [int(i) for i in idx]
        return Films(
            [self.files[i] for i in pick],
            [self.patients[i] for i in pick],
            [self.views[i] for i in pick],
            [self.findings[i] for i in pick],
            [self.images[i] for i in pick],
            [self.boxes[i] for i in pick],
        )


def _cached(path: Path, cache: Path) -> tuple[np.ndarray, float]:
    st = path.stat()
    key = hashlib.sha1(f"{path.name}:{st.st_size}:{st.st_mtime_ns}:{CACHE_SIDE}".encode()).hexdigest()[:16]
    target = cache / f"{path.stem}-{key}.npz"
    if target.exists():
        z = np.load(target)
        return z["image"], float(z["scale"])
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise ValueError(f"{path}: not a readable image")
    scale = min(1.0, CACHE_SIDE / max(gray.shape))
    if scale < 1.0:
        size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(target, image=gray, scale=np.float64(scale))
    return gray, scale


def load(data: Path, cache: Path) -> Films:
    """Every film with both lung boxes; refuses a data folder without lungs_coco.json / metadata.csv."""
    coco_path, meta_path = data / "lungs_coco.json", data / "metadata.csv"
    for p in (coco_path, meta_path):
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing (expected the cxr_dev layout, see its SOURCE.md)")
    coco = json.loads(coco_path.read_text())
    cat_of = {}
    for c in coco["categories"]:
        name = str(c["name"]).strip().lower()
        if name not in COCO_NAMES:
            raise ValueError(f"{coco_path}: category {c['name']!r} is neither 'Right Lung' nor 'Left Lung'")
        cat_of[c["id"]] = COCO_NAMES[name]
    meta = {Path(r["file"]).name: r for r in csv.DictReader(meta_path.open(newline=""))}
    boxes: dict[int, dict[int, list[float]]] = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(a["image_id"], {})[cat_of[a["category_id"]]] = [x, y, x + w, y + h]
    films = Films([], [], [], [], [], [])
    for im in sorted(coco["images"], key=lambda i: i["file_name"]):
        got = boxes.get(im["id"], {})
        name = im["file_name"]
        if set(got) != {0, 1}:
            raise ValueError(f"{coco_path}: image {name!r} has boxes for {sorted(got)} (want both lungs)")
        if name not in meta:
            raise ValueError(f"{meta_path}: no row for {name!r}")
        gray, scale = _cached(data / "images" / name, cache)
        b = np.array([got[0], got[1]], np.float32) * np.float32(scale)
        if (b[0, 0] + b[0, 2]) / 2 > (b[1, 0] + b[1, 2]) / 2:
            films.side_swaps.append(name)
        row = meta[name]
        films.files.append(name)
        films.patients.append(str(row["patientid"]))
        films.views.append(str(row["view"]))
        films.findings.append(str(row["finding"]))
        films.images.append(gray)
        films.boxes.append(b)
    return films
