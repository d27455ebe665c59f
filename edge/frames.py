"""The Frame: one image from a source, with the timing and geometry every later stage needs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Modality = Literal["US", "DX", "CR", "OT"]


@dataclass(frozen=True, slots=True)
class UltrasoundRegion:
    """One entry of the DICOM Sequence of Ultrasound Regions, in pixel coordinates.

    ``delta_x_mm``/``delta_y_mm`` are the physical size of one pixel in mm when the region's
    units are cm (DICOM stores cm; we convert once here), otherwise None.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    spatial_format: int = 0
    data_type: int = 0
    delta_x_mm: float | None = None
    delta_y_mm: float | None = None


@dataclass(frozen=True, slots=True)
class Geometry:
    """Physical meaning of the pixels, where the source knows it."""

    pixel_spacing_mm: tuple[float, float] | None = None  # (row, column) spacing
    depth_mm: float | None = None
    sector: Literal["convex", "linear", "phased", "unknown"] = "unknown"
    regions: tuple[UltrasoundRegion, ...] = ()


@dataclass(frozen=True, slots=True)
class Frame:
    """An image and where and when it came from.

    ``image`` is what is displayed and fed to models: HxW or HxWx3 (BGR, OpenCV order), uint8.
    ``raw`` keeps the stored values when display needed a transform (a 16-bit CR with its VOI
    LUT applied, say), so nothing the detector measured is lost.
    ``t_acquired_ns`` is ``time.monotonic_ns()`` at capture (for a paced replay, the frame's
    scheduled time). ``t_received_ns`` is when the source handed the frame to the runtime, when
    that differs (transport, or a reader that fell behind): the runtime's own latency is measured
    from it, capture-to-screen latency from ``t_acquired_ns``.
    """

    image: np.ndarray
    seq: int
    t_acquired_ns: int
    source_id: str
    modality: Modality = "US"
    wall_time: float = field(default_factory=time.time)
    geometry: Geometry = field(default_factory=Geometry)
    raw: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    t_received_ns: int | None = None

    @property
    def received_ns(self) -> int:
        return self.t_acquired_ns if self.t_received_ns is None else self.t_received_ns

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
