"""Render one labelled frame of every phantom preset and operator event into two PNG grids.

    python -m tools.phantom.contact_sheet [--out docs] [--seed 0]

Writes ``phantom_contact_sheet.png`` (the frames) and ``phantom_truth_sheet.png`` (the same frames
with the ground-truth boxes drawn), and prints frames/s per preset.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from firmware_bridge.phantom import Truth, frames, single

TILES: list[tuple[str, str, tuple[str, ...], dict[str, Any]]] = [
    ("lung normal", "lung", (), {}),
    ("lung 3 B-lines", "lung", (), {"b_line_count": 3}),
    ("consolidation", "lung", (), {"consolidation": True}),
    ("effusion", "lung", (), {"effusion": True}),
    ("FAST free fluid", "abdomen", (), {"free_fluid": True}),
    ("bladder", "bladder", (), {}),
    ("probe lifted", "lung", ("no_contact",), {}),
    ("rib shadow", "lung", ("rib_shadow",), {}),
    ("partial contact", "abdomen", ("partial_contact",), {}),
    ("gain up", "lung", ("gain_up",), {}),
    ("gain down", "lung", ("gain_down",), {}),
    ("motion blur", "abdomen", ("motion_blur",), {"motion_mm_s": 20.0}),
]
COLORS = {
    "b_line": (0, 200, 255),
    "pleural_line": (0, 255, 0),
    "consolidation": (255, 0, 255),
    "effusion": (255, 200, 0),
    "free_fluid": (255, 128, 0),
    "bladder": (0, 128, 255),
}


def frame_of(
    preset: str, events: tuple[str, ...], params: dict[str, Any], seed: int
) -> tuple[np.ndarray, Truth]:
    """The last of six frames (so sliding and motion have started)."""
    return list(frames(single(preset, events, duration_s=0.2, **params), fps=30, seed=seed))[-1]


def label(img: np.ndarray, text: str) -> np.ndarray:
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img
    cv2.putText(bgr, text, (8, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 255, 255), 2, cv2.LINE_AA)
    return bgr


def draw_truth(img: np.ndarray, truth: Truth) -> np.ndarray:
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    for b in truth.boxes:
        x0, y0, x1, y1 = (round(v) for v in b.px)
        cv2.rectangle(bgr, (x0, y0), (x1, y1), COLORS.get(b.label, (255, 255, 255)), 2)
    info = (
        f"contact={int(truth.contact)} shadow={truth.shadow_fraction:.2f} gain={truth.gain_offset_db:+.0f}dB"
    )
    cv2.putText(bgr, info, (8, 500), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return bgr


def grid(tiles: list[np.ndarray], cols: int = 4) -> np.ndarray:
    rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    return np.vstack(rows)


def fps_of(preset: str, n: int = 60) -> float:
    t0 = time.perf_counter()
    for _ in frames(single(preset, duration_s=n / 30.0), fps=30, seed=1):
        pass
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    plain, boxed = [], []
    for name, preset, events, params in TILES:
        img, truth = frame_of(preset, events, params, a.seed)
        plain.append(label(img, name))
        boxed.append(label(draw_truth(img, truth), name))
    a.out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out / "phantom_contact_sheet.png"), grid(plain))
    cv2.imwrite(str(a.out / "phantom_truth_sheet.png"), grid(boxed))
    for preset in ("lung", "abdomen", "bladder"):
        print(f"{preset}: {fps_of(preset):.0f} frames/s (512x512, this process, one thread)")


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()
