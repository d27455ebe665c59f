"""The cxr_kermany data set (see its SOURCE.md): paediatric chest films, NORMAL / PNEUMONIA folders.

The patient is in the file name: ``person1000_bacteria_2931`` -> ``person1000``; ``IM-0640-0001-0001`` ->
``IM-0640``; ``NORMAL2-IM-1018-0001`` -> ``NORMAL2-IM-1018`` (a separate numbering). Films are decoded
once into one npz cache (gray 224x224 uint8), keyed by the list of files, sizes and mtimes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

LABELS = ("normal", "pneumonia")
FOLDERS = {"NORMAL": 0, "PNEUMONIA": 1}
SIDE = 224
_PATIENT = re.compile(r"^(person\d+|(?:NORMAL2-)?IM-\d+)[_-]", re.IGNORECASE)


def patient_of(name: str) -> str:
    m = _PATIENT.match(name)
    if not m:
        raise ValueError(f"{name}: no patient id in the file name (expected personN_... or IM-XXXX-...)")
    return m.group(1)


@dataclass
class Films:
    files: list[str]
    patients: list[str]
    labels: np.ndarray  # 0 normal, 1 pneumonia
    images: np.ndarray  # [n, SIDE, SIDE] uint8


def load(data: Path, cache: Path, limit: int | None = None) -> Films:
    paths = []
    for folder, label in FOLDERS.items():
        d = data / folder
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: missing (expected NORMAL/ and PNEUMONIA/ folders, see SOURCE.md)")
        paths += [
            (p, label) for p in sorted(d.glob("*.jpeg")) + sorted(d.glob("*.jpg")) + sorted(d.glob("*.png"))
        ]
    if limit:
        paths = paths[: limit // 2] + paths[-(limit - limit // 2) :]
    key = hashlib.sha1()
    for p, _ in paths:
        st = p.stat()
        key.update(f"{p.parent.name}/{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    target = cache / f"kermany-{key.hexdigest()[:16]}.npy"
    if target.exists():
        images = np.load(target)
    else:
        images = np.empty((len(paths), SIDE, SIDE), np.uint8)
        for i, (p, _) in enumerate(paths):
            gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                raise ValueError(f"{p}: not a readable image")
            images[i] = (
                gray
                if gray.shape == (SIDE, SIDE)
                else cv2.resize(gray, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
            )
        cache.mkdir(parents=True, exist_ok=True)
        np.save(target, images)
    names = [p.name for p, _ in paths]
    return Films(
        [f"{p.parent.name}/{p.name}" for p, _ in paths],
        [patient_of(n) for n in names],
        np.array([lab for _, lab in paths], np.int64),
        images,
    )
