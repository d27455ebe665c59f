"""A small synthetic stand-in for pocus_dev, shared by the toolchain tests (``conftest.pocus_dir``).

It imitates pocus_dev's layout, labels.csv (the B-lines column included) and SOURCE.md, so that the
real loading, splitting, training, quantization, evaluation and publishing code runs end to end
without the real clips, which users do not have.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

COLUMNS = [
    "file",
    "Filename",
    "Label",
    "License",
    "LinkToLicense",
    "Type",
    "Probe",
    "Framerate",
    "Resolution",
    "Effusion",
    "Consolidations",
    "B-lines",
    "A-lines",
    "Pleural line irregularities",
    "Healthy",
    "DOI",
    "URL (Video Name)",
]


def _sector_clip(path: Path, seed: int, convex: bool, frames: int = 10, size: int = 160) -> None:
    """Speckle inside a sector (convex) or a rectangle (linear), bright lines, depth fall-off."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if convex:
        ang = np.degrees(np.arctan2(xx - size / 2, yy + size * 0.2))
        r = np.hypot(xx - size / 2, yy + size * 0.2)
        mask = (np.abs(ang) < 35) & (r > size * 0.25) & (r < size * 1.1)
    else:
        mask = (xx > size * 0.15) & (xx < size * 0.85) & (yy > 4)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 20.0, (size, size))
    assert writer.isOpened()
    for k in range(frames):
        speckle = rng.rayleigh(0.3, (size, size)).astype(np.float32)
        speckle = cv2.GaussianBlur(speckle, (0, 0), 1.2)
        img = speckle * np.exp(-yy / (size * 1.5)) * 255
        img[int(size * 0.3) + k % 3 : int(size * 0.3) + 3 + k % 3] += 120  # a pleural-line-like echo
        img = np.clip(img * mask, 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    writer.release()


def write_pocus_standin(root: Path) -> Path:
    """Eleven short clips (convex and linear, the bundled demo clip's name among them, three sites)
    under ``root``."""
    rows = []
    files = [f"convex/Reg_Image_{i}_crop.mp4" for i in range(5)] + ["convex/Reg_Image_182106_crop.mp4"]
    files += [f"linear/Cov_linear_{i}.mp4" for i in range(5)]
    for i, f in enumerate(files):
        convex = f.startswith("convex/")
        _sector_clip(root / f, seed=i, convex=convex)
        row = dict.fromkeys(COLUMNS, "0")
        row.update(
            {
                "file": f,
                "Filename": Path(f).stem,
                "Label": "regular" if i % 2 else "COVID-19",
                "B-lines": "1" if i % 3 == 0 else "0",
                "License": "CC BY 4.0",
                "LinkToLicense": "https://creativecommons.org/licenses/by/4.0/",
                "Type": "video",
                "Probe": "convex" if convex else "linear",
                "Framerate": "20",
                "Resolution": "160x160",
                "DOI": "",
                # three sites, so leave-one-source-out has folds (tools.modelkit.grouped.source_of)
                "URL (Video Name)": f"synthetic-site-{(i // 2) % 3}",
            }
        )
        rows.append(row)
    with (root / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (root / "SOURCE.md").write_text("# Synthetic clips written by the test\n")
    return root
