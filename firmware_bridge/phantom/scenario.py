"""Scenario timeline and the deterministic frame generator.

A scenario is a list of segments (JSON: ``{"segments": [{"start_s": 0, "duration_s": 5,
"preset": "lung", "events": ["gain_up"], "params": {"b_line_count": 3}}]}``). ``frames(scenario,
fps, seed)`` yields ``(image, truth)`` for t = 0, 1/fps, ... until the last segment ends; the same
seed gives the same frames. Between segments with no segment active, the probe is lifted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from firmware_bridge.phantom.events import apply_shadow, check_events, gain_db
from firmware_bridge.phantom.geometry import ProbeGeometry
from firmware_bridge.phantom.physics import Physics
from firmware_bridge.phantom.presets import PRESET_DEPTH_MM, PRESETS, no_contact
from firmware_bridge.phantom.scene import Scene
from firmware_bridge.phantom.simulator import Simulator
from firmware_bridge.phantom.truth import Truth, boxes_of


@dataclass(frozen=True)
class Segment:
    start_s: float
    duration_s: float
    preset: str = "lung"
    events: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    probe: str = "convex"  # "convex" or "linear"
    depth_mm: float | None = None  # None: the preset's default depth
    motion_mm_s: float = 0.0  # lateral probe speed (speckle moves and decorrelates)
    elevation_per_s: float = 0.0  # fraction of scatterers replaced per second (out-of-plane motion)
    sliding: bool = True  # lung sliding (lung preset)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        if self.probe not in ("convex", "linear"):
            raise ValueError(f"probe must be 'convex' or 'linear', got {self.probe!r}")
        numbers = {
            "start_s": (self.start_s, 0.0, False),
            "duration_s": (self.duration_s, 0.0, True),
            "depth_mm": (self.depth_mm, 0.0, True),
            "elevation_per_s": (self.elevation_per_s, 0.0, False),
            "motion_mm_s": (self.motion_mm_s, -math.inf, False),
        }
        for name, (value, low, strict) in numbers.items():
            if value is None and name == "depth_mm":
                continue
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or float(value) < low or (strict and value == low):  # type: ignore[arg-type]
                bound = "" if low == -math.inf else f" {'>' if strict else '>='} {low:g}"
                raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
        check_events(self.events)
        object.__setattr__(self, "events", tuple(self.events))

    def geometry(self) -> ProbeGeometry:
        depth = self.depth_mm or PRESET_DEPTH_MM[self.preset]
        if self.probe == "linear":
            return ProbeGeometry(kind="linear", depth_mm=min(depth, 60.0), center_mhz=7.5)
        return ProbeGeometry(kind="convex", depth_mm=depth)


@dataclass(frozen=True)
class Scenario:
    segments: tuple[Segment, ...]

    @property
    def duration_s(self) -> float:
        return max((s.start_s + s.duration_s for s in self.segments), default=0.0)

    def at(self, t: float) -> tuple[int, Segment] | None:
        for i, s in enumerate(self.segments):
            if s.start_s <= t < s.start_s + s.duration_s:
                return i, s
        return None

    def to_json(self) -> str:
        return json.dumps({"segments": [{**asdict(s), "events": list(s.events)} for s in self.segments]})

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scenario:
        """Build from JSON data; ``ValueError`` naming the segment and field when something is wrong."""
        if not isinstance(d, dict) or not isinstance(d.get("segments"), list):
            raise ValueError('a scenario is {"segments": [...]}')
        segments = []
        known = {f.name for f in fields(Segment)}
        for i, s in enumerate(d["segments"]):
            if not isinstance(s, dict):
                raise ValueError(f"segments[{i}] is not an object")
            unknown = sorted(set(s) - known)
            if unknown:
                raise ValueError(
                    f"segments[{i}]: unknown field(s) {unknown}; known: {', '.join(sorted(known))}"
                )
            try:
                segments.append(Segment(**{**s, "events": tuple(s.get("events", ()))}))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"segments[{i}]: {exc}") from None
        return cls(tuple(segments))


def single(
    preset: str = "lung", events: tuple[str, ...] = (), duration_s: float = 1.0, **kw: Any
) -> Scenario:
    """A one-segment scenario (tests, contact sheet): ``kw`` are Segment fields or finding params."""
    fields = set(Segment.__dataclass_fields__)
    seg_kw = {k: v for k, v in kw.items() if k in fields}
    params = {k: v for k, v in kw.items() if k not in fields}
    return Scenario((Segment(0.0, duration_s, preset, tuple(events), params=params, **seg_kw),))


# The virtual probe's default for a preset: a scan that visits the findings, then starts again.
# Each stop is another intercostal view (a new scene); no operator events, so the image stays
# diagnostic and the detector, not the quality gate, decides what is drawn.
TOURS: dict[str, tuple[tuple[float, dict[str, Any]], ...]] = {
    "lung": (
        (8.0, {}),  # A-lines: a normal aerated lung
        (8.0, {"b_line_count": 2}),
        (8.0, {"b_line_count": 4}),  # a B-pattern (3 or more)
        (8.0, {"b_line_count": 6, "b_line_width_mm": 3.0}),
        (8.0, {"consolidation": True, "b_line_count": 1}),
        (8.0, {"effusion": True, "effusion_mm": 30.0}),
    ),
}


def tour(preset: str = "lung", steady_s: float = 24 * 3600.0) -> Scenario:
    """The preset's tour (``TOURS``), or one steady segment of ``steady_s`` for a preset without one."""
    stops = TOURS.get(preset)
    if not stops:
        return single(preset, duration_s=steady_s)
    segments, t = [], 0.0
    for duration, params in stops:
        segments.append(Segment(t, duration, preset, (), params=dict(params), motion_mm_s=1.0))
        t += duration
    return Scenario(tuple(segments))


def build_scene(seg: Segment, sim: Simulator, rng: np.random.Generator) -> Scene:
    if "no_contact" in seg.events:
        return no_contact(sim.sc, rng, seg.params)
    scene = PRESETS[seg.preset](sim.sc, rng, seg.params)
    for kind in ("rib_shadow", "partial_contact"):
        if kind in seg.events:
            apply_shadow(scene, sim.sc, rng, seg.params, kind)
    return scene


def frames(scenario: Scenario, fps: float = 30.0, seed: int = 0) -> Iterator[tuple[np.ndarray, Truth]]:
    """Yield (uint8 image, truth) per frame, deterministically for ``seed``."""
    rng = np.random.default_rng(seed)
    phys = Physics()
    sims: dict[ProbeGeometry, Simulator] = {}
    current: int | None = None
    last: np.ndarray | None = None
    truth_static: dict[str, Any] = {}
    n = round(scenario.duration_s * fps)
    for k in range(n):
        t = k / fps
        hit = scenario.at(t)
        seg = hit[1] if hit else Segment(t, 1.0 / fps, "lung", ("no_contact",))
        geo = seg.geometry()
        if geo not in sims:
            sims[geo] = Simulator(geo, phys, np.random.default_rng(rng.integers(1 << 63)))
        sim = sims[geo]
        idx = hit[0] if hit else -1
        if idx != current or (idx == -1 and sim.scene is None):
            scene = build_scene(seg, sim, np.random.default_rng(rng.integers(1 << 63)))
            sim.set_scene(scene)
            shadow = sim.sc.fraction_of_sector(scene.shadow) if scene.shadow is not None else 0.0
            truth_static = {
                "boxes": boxes_of(scene, sim.sc),
                "contact": scene.contact,
                "shadow_fraction": round(shadow, 4),
                "geometry": sim.sc.info(),
            }
            current = idx
        frozen = "freeze" in seg.events and last is not None
        if not frozen:
            mm_per_line = float(geo.lateral_mm_per_line(geo.depth_mm / 2))
            slide = 0.5 * np.cos(2 * np.pi * t / 3.0) if seg.sliding else 0.0  # lines/frame, 3 s breath
            sim.advance(seg.motion_mm_s / fps / mm_per_line, min(seg.elevation_per_s / fps, 1.0), slide)
            blur = "motion_blur" in seg.events
            last = sim.image(gain_db(seg.events, seg.params), blur_steps=4 if blur else 0)
        assert last is not None
        truth = Truth(
            frame_index=k,
            t_s=round(t, 6),
            preset=seg.preset,
            events=seg.events,
            gain_offset_db=gain_db(seg.events, seg.params),
            frozen=frozen,
            params=dict(seg.params),
            **truth_static,
        )
        yield (last.copy() if frozen else last), truth


def render(scenario: Scenario, t: float, fps: float = 30.0, seed: int = 0) -> tuple[np.ndarray, Truth]:
    """The frame at time ``t`` (runs the generator up to it: the speckle has a history)."""
    target = round(t * fps)
    for k, (img, truth) in enumerate(frames(scenario, fps, seed)):
        if k >= target:
            return img, truth
    raise ValueError(f"t={t} is past the scenario's end ({scenario.duration_s} s)")
