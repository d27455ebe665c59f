"""Small synthetic stand-ins for the chest X-ray data sets, in their layouts, written by the tests
(users and CI do not have the real films): a gray chest with two dark lung fields whose boxes are
known; pneumonia films get a bright patch inside a lung field."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np


def chest(rng: np.random.Generator, w: int, h: int, opacity: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic film and its lung boxes [2, 4] (patient's right = image left first)."""
    img = np.full((h, w), int(rng.integers(150, 200)), np.uint8)
    boxes = []
    for cx in (0.3, 0.7):
        x0, x1 = int((cx - 0.16 + rng.uniform(-0.03, 0.03)) * w), int((cx + 0.16) * w)
        y0, y1 = int(rng.uniform(0.12, 0.2) * h), int(rng.uniform(0.75, 0.85) * h)
        cv2.ellipse(
            img, ((x0 + x1) // 2, (y0 + y1) // 2), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 50, -1
        )
        boxes.append([x0, y0, x1, y1])
    if opacity:
        x0, y0, x1, y1 = boxes[int(rng.integers(0, 2))]
        cv2.circle(img, ((x0 + x1) // 2, (y0 + 2 * y1) // 3), (x1 - x0) // 3, 170, -1)
    noise = rng.normal(0, 6, img.shape)
    return (img + noise).clip(0, 255).astype(np.uint8), np.array(boxes, np.float32)


def write_cxr_dev_standin(root: Path, films: int = 12, patients: int = 6, seed: int = 0) -> Path:
    """images/*.png, lungs_coco.json ("Right Lung" / "Left Lung"), metadata.csv, as cxr_dev has them."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    coco: dict = {
        "categories": [{"id": 1, "name": "Right Lung"}, {"id": 2, "name": "Left Lung"}],
        "images": [],
        "annotations": [],
    }
    rows = []
    for i in range(films):
        name = f"film{i:03d}.png"
        img, boxes = chest(rng, int(rng.integers(180, 260)), int(rng.integers(200, 260)))
        cv2.imwrite(str(root / "images" / name), img)
        coco["images"].append({"id": i, "file_name": name, "height": img.shape[0], "width": img.shape[1]})
        for cat, (x0, y0, x1, y1) in zip((1, 2), boxes.tolist()):
            coco["annotations"].append(
                {"id": 2 * i + cat, "image_id": i, "category_id": cat, "bbox": [x0, y0, x1 - x0, y1 - y0]}
            )
        finding = "No Finding" if i % 4 == 0 else "COVID-19"
        rows.append(
            {
                "file": f"images/{name}",
                "patientid": str(i % patients),
                "view": "PA",
                "finding": finding,
                "licence": "CC BY",
                "doi": "10.0000/standin",
                "url": "https://example.org/standin",
            }
        )
    (root / "lungs_coco.json").write_text(json.dumps(coco))
    with (root / "metadata.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def write_kermany_standin(root: Path, per_class: int = 20, seed: int = 0) -> Path:
    """NORMAL/IM-XXXX-0001.jpeg and PNEUMONIA/personN_bacteria_M.jpeg, 224x224, one film per patient."""
    rng = np.random.default_rng(seed)
    for folder in ("NORMAL", "PNEUMONIA"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
        img, _ = chest(rng, 224, 224)
        cv2.imwrite(str(root / "NORMAL" / f"IM-{i:04d}-0001.jpeg"), img)
        img, _ = chest(rng, 224, 224, opacity=True)
        cv2.imwrite(str(root / "PNEUMONIA" / f"person{i}_bacteria_{i + 100}.jpeg"), img)
    return root
