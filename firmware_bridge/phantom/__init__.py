"""B-mode ultrasound phantom: simulated frames with known ground truth (pure numpy / OpenCV, no I/O).

Entry points: ``frames(scenario, fps, seed)`` yields ``(uint8 image, Truth)``; ``render(scenario, t)``
gives one frame; ``single(preset, events, **params)`` builds a one-segment scenario. See docs/phantom.md.
"""

from firmware_bridge.phantom.events import EVENTS
from firmware_bridge.phantom.geometry import ProbeGeometry, ScanConverter, scan_converter
from firmware_bridge.phantom.physics import Physics
from firmware_bridge.phantom.presets import PRESETS
from firmware_bridge.phantom.scenario import Scenario, Segment, frames, render, single, tour
from firmware_bridge.phantom.truth import Box, Truth

__all__ = [
    "EVENTS",
    "PRESETS",
    "Box",
    "Physics",
    "ProbeGeometry",
    "ScanConverter",
    "Scenario",
    "Segment",
    "Truth",
    "frames",
    "render",
    "scan_converter",
    "single",
    "tour",
]
