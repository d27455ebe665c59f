"""The virtual probe's captured frames: what waits for the wire, and its FRAME_CHUNK header fields.

A frame takes its id and device time at capture; it goes into the send buffer once that holds
less than ``SEND_BACKLOG_BYTES`` (one port write), so at most about one frame waits in the probe,
as in firmware whose USB buffer holds one frame. A newer capture replaces a frame still waiting,
which is dropped and counted (``VirtualProbe.stats["frames_skipped"]``, EMULATOR.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge import messages as m
from firmware_bridge.phantom import Truth

SEND_BACKLOG_BYTES = 65536
_GEOMETRY = {"convex": m.Geometry.CONVEX, "linear": m.Geometry.LINEAR, "phased": m.Geometry.PHASED}


@dataclass(frozen=True, slots=True)
class Captured:
    """A frame captured, waiting for the send buffer."""

    fid: int
    ts: int
    head: tuple[Any, ...]  # FRAME_CHUNK header fields after the timestamp
    pixels: bytes
    settings: dict[str, Any]
    truth: Truth

    def truth_line(self, dropped_chunks: list[int], skipped: bool) -> dict[str, Any]:
        """Its line of the truth side file."""
        return {
            "frame_id": self.fid,
            "device_time_us": self.ts,
            "dropped_chunks": dropped_chunks,
            "skipped": skipped,
            "settings": self.settings,
            "truth": self.truth.to_dict(),
        }


def chunk_head(image: np.ndarray, truth: Truth) -> tuple[Any, ...]:
    """width, height, bit depth, geometry, spacing x/y, depth, sector angle, radius of a frame."""
    g = truth.geometry
    convex = g.get("kind") == "convex"
    return (
        image.shape[1],
        image.shape[0],
        8,
        _GEOMETRY.get(g.get("kind", "convex"), m.Geometry.CONVEX),
        g.get("pixel_spacing_mm", 0.0),
        g.get("pixel_spacing_mm", 0.0),
        g.get("depth_mm", 0.0),
        g.get("fov_deg", 0.0) if convex else 0.0,
        g.get("radius_mm", 0.0) if convex else 0.0,
    )
