"""Phantom frames for us-quality, labelled from the phantom's ground truth (``firmware_bridge.phantom``).

The real clips teach quality on real anatomy; the phantom adds what they lack: frames with many
B-lines, a consolidation or an effusion that are *diagnostic* (the real clips' synthetic shadows
made the model call the virtual probe's findings ``shadow``), and the phantom's own physics of
probe lifted, rib shadow, partial contact and receive gain. Each sample is a short scan of one
scene (a case, a probe, a depth, a seed); the label comes from the frame's ``Truth`` alone
(:func:`label_of`), never from the case name, so a case whose truth is ambiguous is dropped.

Train, validation and test use disjoint seed ranges (``SEED_BASE``), so no scene is in two sets.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firmware_bridge.phantom import Truth, frames, scan_converter, single
from tools.us_quality import LABELS
from tools.us_quality.view import to_input

SHADOW_MIN = 0.35  # shadow_fraction from which a frame is 'shadow' (the real recipe's >= ~35%)
SHADOW_DIAG_MAX = 0.2  # a narrower event shadow (a rib at the edge) still leaves a diagnostic frame
GAIN_MIN_DB = 12.0  # |gain offset| from which a frame is gain_high / gain_low
GAIN_DIAG_MAX_DB = 4.0  # small gain jitter keeps a frame diagnostic
SEED_BASE = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000}  # disjoint scene seeds per split
FPS = 10.0
FRAMES_PER_SCENE = 2  # consecutive frames of one scene (the speckle moves between them)


@dataclass(frozen=True)
class Case:
    """A kind of phantom scene; ``params`` may hold ``(lo, hi)`` ranges drawn per scene."""

    name: str
    preset: str
    events: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0  # relative share of scenes
    finding: str = ""  # what the diagnostic frame shows, for the per-finding report


# Lung findings carry most of the diagnostic weight: they are what the old model got wrong.
CASES: tuple[Case, ...] = (
    Case("lung normal", "lung", (), {"gain_db": (-4.0, 4.0)}, 1.0, "normal"),
    Case("lung b-lines", "lung", (), {"b_line_count": (1, 8), "b_line_width_mm": (1.5, 4.0)}, 2.0, "b_lines"),
    Case(
        "lung consolidation",
        "lung",
        (),
        {"consolidation": True, "b_line_count": (0, 3)},
        1.0,
        "consolidation",
    ),
    Case("lung effusion", "lung", (), {"effusion": True, "effusion_mm": (15.0, 40.0)}, 1.0, "effusion"),
    Case("lung narrow rib", "lung", ("rib_shadow",), {"shadow_width": (0.06, 0.16)}, 0.5, "rib_at_edge"),
    Case("abdomen normal", "abdomen", (), {"gain_db": (-4.0, 4.0)}, 0.5, "abdomen"),
    Case("abdomen free fluid", "abdomen", (), {"free_fluid": True, "fluid_mm": (3.0, 10.0)}, 0.25, "abdomen"),
    Case("bladder", "bladder", (), {}, 0.25, "bladder"),
    Case("probe lifted", "lung", ("no_contact",), {}, 1.0),
    Case("rib shadow lung", "lung", ("rib_shadow",), {}, 0.7),
    Case("partial contact lung", "lung", ("partial_contact",), {}, 0.3),
    Case("partial contact abdomen", "abdomen", ("partial_contact",), {}, 0.3),
    Case("rib shadow b-lines", "lung", ("rib_shadow",), {"b_line_count": (2, 6)}, 0.3),
    Case("gain up lung", "lung", ("gain_up",), {"gain_db": (14.0, 28.0), "b_line_count": (0, 6)}, 0.8),
    Case("gain up abdomen", "abdomen", ("gain_up",), {"gain_db": (14.0, 28.0)}, 0.5),
    Case("gain down lung", "lung", ("gain_down",), {"gain_db": (-30.0, -16.0), "b_line_count": (0, 6)}, 0.8),
    Case("gain down abdomen", "abdomen", ("gain_down",), {"gain_db": (-30.0, -16.0)}, 0.5),
)


def label_of(truth: Truth) -> int | None:
    """The quality class of a phantom frame from its ground truth; None where it is ambiguous."""
    if "no_contact" in truth.events or not truth.contact:
        return LABELS.index("no_contact")
    if truth.shadow_fraction >= SHADOW_MIN:
        return LABELS.index("shadow")
    if truth.shadow_fraction > SHADOW_DIAG_MAX:
        return None  # grey zone between a rib at the edge and a shadowed view
    if truth.gain_offset_db >= GAIN_MIN_DB:
        return LABELS.index("gain_high")
    if truth.gain_offset_db <= -GAIN_MIN_DB:
        return LABELS.index("gain_low")
    if abs(truth.gain_offset_db) > GAIN_DIAG_MAX_DB:
        return None
    return LABELS.index("diagnostic")


@dataclass(frozen=True)
class PhantomSet:
    images: np.ndarray  # (N, 128, 128) uint8, the model's view of the phantom frame (view.to_input)
    labels: np.ndarray  # (N,) class index
    case: np.ndarray  # (N,) index into CASES
    probe: np.ndarray  # (N,) "convex" / "linear"

    def __len__(self) -> int:
        return len(self.labels)


def _draw(v: Any, rng: np.random.Generator) -> Any:
    if isinstance(v, tuple):
        lo, hi = v
        return int(rng.integers(lo, hi + 1)) if isinstance(lo, int) else float(rng.uniform(lo, hi))
    return v


def _scene(args: tuple[int, int]) -> list[tuple[np.ndarray, int | None, int, str]]:
    """Frames of scene ``seed`` of case ``ci``: (128x128 image, label, case index, probe)."""
    ci, seed = args
    case = CASES[ci]
    rng = np.random.default_rng([seed, ci])
    params = {k: _draw(v, rng) for k, v in case.params.items() if k != "shadow_width"}
    if "shadow_width" in case.params:  # a narrow rib shadow at one edge of the sector
        w = _draw(case.params["shadow_width"], rng)
        params.update(shadow_from=0.0, shadow_to=w) if rng.random() < 0.5 else params.update(
            shadow_from=1.0 - w, shadow_to=1.0
        )
    probe = "linear" if case.preset == "lung" and rng.random() < 0.3 else "convex"
    depth = {"lung": (70.0, 130.0), "abdomen": (110.0, 180.0), "bladder": (100.0, 160.0)}[case.preset]
    scenario = single(
        case.preset,
        case.events,
        duration_s=FRAMES_PER_SCENE / FPS,
        probe=probe,
        depth_mm=float(rng.uniform(*depth)),
        motion_mm_s=float(rng.uniform(0.0, 2.0)),
        **params,
    )
    return [
        (to_input(img, _mask_at(scenario, t.t_s)), label_of(t), ci, probe)
        for img, t in frames(scenario, fps=FPS, seed=seed)
    ]


def _mask_at(scenario: Any, t_s: float) -> np.ndarray:
    """The imaged sector at time ``t_s``, from the simulator's own scan converter (where the runtime
    finds it from the image; the phantom knows it exactly)."""
    hit = scenario.at(t_s)
    seg = hit[1] if hit else scenario.segments[0]
    return np.asarray(scan_converter(seg.geometry()).mask, bool)


def scene_jobs(split: str, n_scenes: int, seed: int) -> list[tuple[int, int]]:
    """(case index, scene seed) of ``n_scenes`` scenes by case weight; seeds disjoint per split."""
    w = np.array([c.weight for c in CASES])
    counts = np.floor(w / w.sum() * n_scenes).astype(int)
    counts[np.argsort(-w)[: n_scenes - counts.sum()]] += 1
    base = SEED_BASE[split] + 10_000 * seed
    jobs, k = [], 0
    for ci, n in enumerate(counts):
        for _ in range(int(n)):
            jobs.append((ci, base + k))
            k += 1
    return jobs


def phantom_set(split: str, n_scenes: int, seed: int, workers: int = 2) -> PhantomSet:
    """Frames of ``n_scenes`` phantom scenes of ``split``; ambiguous frames (label None) left out."""
    if split not in SEED_BASE:
        raise ValueError(f"unknown phantom split {split!r}; known: {', '.join(SEED_BASE)}")
    jobs = scene_jobs(split, n_scenes, seed)
    if workers > 1 and len(jobs) > 32:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_scene, jobs, chunksize=8)
    else:
        parts = [_scene(j) for j in jobs]
    rows = [r for part in parts for r in part if r[1] is not None]
    if not rows:
        empty = np.zeros(0, int)
        return PhantomSet(np.zeros((0, 128, 128), np.uint8), empty, empty, np.zeros(0, str))
    return PhantomSet(
        np.stack([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        np.array([r[2] for r in rows]),
        np.array([r[3] for r in rows]),
    )


def tour_set(seed: int, fps: float = 2.0, preset: str = "lung") -> tuple[np.ndarray, list[str]]:
    """The virtual probe's default scan (``phantom.tour``): frames and the stop each shows."""
    from firmware_bridge.phantom import tour

    scenario = tour(preset)
    imgs, stops = [], []
    for img, t in frames(scenario, fps=fps, seed=SEED_BASE["test"] + 9_999 + seed):
        p = t.params
        stop = (
            "consolidation"
            if p.get("consolidation")
            else "effusion"
            if p.get("effusion")
            else f"{p.get('b_line_count', 0)} b-lines"
        )
        imgs.append(to_input(img, _mask_at(scenario, t.t_s)))
        stops.append(stop)
    return np.stack(imgs), stops


def findings_of(ps: PhantomSet, idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """The finding name of each frame's case ('' for non-diagnostic cases)."""
    names = np.array([c.finding for c in CASES])
    return names[ps.case if idx is None else ps.case[np.asarray(idx)]]
