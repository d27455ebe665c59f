"""Labelled frames from the phantom: random lung scenes with their exact boxes.

Every scene draws its findings (B-line count and width, consolidation, effusion), probe, depth
and operator events from a seeded generator, then renders a short run of frames so that the
speckle has a history. Boxes come from the phantom's ground truth, in the same pixels as the
image, and are mapped into the model input through the runtime's own letterbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge.phantom.scenario import Scenario, Segment, frames

# Share of scenes with each operator event; the rest are clean. Shadows and gain errors teach
# the detector that a finding may be half hidden, the probe lifted that there may be nothing.
EVENT_MIX: tuple[tuple[tuple[str, ...], float], ...] = (
    ((), 0.70),
    (("rib_shadow",), 0.08),
    (("partial_contact",), 0.05),
    (("gain_up",), 0.05),
    (("gain_down",), 0.05),
    (("motion_blur",), 0.04),
    (("no_contact",), 0.03),
)
B_LINE_COUNTS = (0, 1, 2, 3, 4, 5, 6, 8)
B_LINE_P = (0.28, 0.14, 0.14, 0.14, 0.10, 0.08, 0.07, 0.05)
FRAMES_PER_SCENE = 2
RENDER_FPS = 10.0


@dataclass(frozen=True)
class PhantomFrame:
    image: np.ndarray  # uint8 gray, the phantom's full output
    boxes: np.ndarray  # [K, 4] float32 xyxy in image pixels
    labels: np.ndarray  # [K] int64 class index
    scene: dict[str, Any]  # what was drawn, for the dataset manifest


def random_segment(rng: np.random.Generator) -> Segment:
    """One lung scene with findings drawn at random."""
    linear = rng.random() < 0.3
    events = EVENT_MIX[rng.choice(len(EVENT_MIX), p=[p for _, p in EVENT_MIX])][0]
    params: dict[str, Any] = {
        "b_line_count": int(rng.choice(B_LINE_COUNTS, p=B_LINE_P)),
        "b_line_width_mm": float(rng.uniform(1.5, 4.0)),
        "pleura_mm": float(rng.uniform(8, 14) if linear else rng.uniform(12, 24)),
    }
    if rng.random() < 0.2:
        params["consolidation"] = True
    if rng.random() < 0.15:
        params["effusion"] = True
        params["effusion_mm"] = float(rng.uniform(12, 40))
    return Segment(
        0.0,
        FRAMES_PER_SCENE / RENDER_FPS + 1e-6,
        "lung",
        events,
        params=params,
        probe="linear" if linear else "convex",
        depth_mm=float(rng.uniform(40, 60) if linear else rng.uniform(80, 160)),
        motion_mm_s=float(rng.uniform(0, 6)),
        sliding=bool(rng.random() < 0.9),
    )


def scene_frames(seg: Segment, seed: int, labels: Sequence[str]) -> list[PhantomFrame]:
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for image, truth in frames(Scenario((seg,)), RENDER_FPS, seed):
        kept = [b for b in truth.boxes if b.label in index]
        boxes = np.array([b.px for b in kept], np.float32).reshape(-1, 4)
        cls = np.array([index[b.label] for b in kept], np.int64)
        scene = {"probe": seg.probe, "depth_mm": seg.depth_mm, "events": list(seg.events), **seg.params}
        out.append(PhantomFrame(image, boxes, cls, scene))
    return out[:FRAMES_PER_SCENE]


def phantom_frames(
    n: int, seed: int, labels: Sequence[str], progress: Callable[[int], None] | None = None
) -> list[PhantomFrame]:
    """``n`` frames from ``ceil(n / FRAMES_PER_SCENE)`` random scenes; the same seed, the same frames."""
    rng = np.random.default_rng(seed)
    out: list[PhantomFrame] = []
    while len(out) < n:
        seg = random_segment(rng)
        out += scene_frames(seg, int(rng.integers(2**31)), labels)
        if progress:
            progress(len(out))
    return out[:n]
