"""A scene: the tissue model on the beam grid, and small helpers to draw it.

Every map is (n_depth x n_lines) float32, so the simulator samples it per scatterer with one index:
``echo`` is the backscatter amplitude of diffuse tissue (1 = liver-like, 0 = fluid), ``alpha`` the
attenuation in dB/cm/MHz (bone or air: very high, which is what casts an acoustic shadow), ``specular``
the amplitude of coherent interfaces (pleura, capsules, walls; in units of tissue rms per cell) and
``comet`` the amplitude of reverberation artefacts that do not fade with depth (B-lines).
``regions`` are the ground-truth masks, by label, for the truth boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.phantom.geometry import ScanConverter

SOFT_TISSUE_ALPHA = 0.5
FLUID_ALPHA = 0.01
BONE_ALPHA = 60.0


@dataclass
class Scene:
    preset: str
    echo: np.ndarray
    alpha: np.ndarray
    specular: np.ndarray
    comet: np.ndarray
    slide_row: float = -1.0  # scatterers deeper than this row slide laterally (lung sliding); -1: none
    contact: bool = True
    shadow: np.ndarray | None = None  # cells in an acoustic shadow cast by an operator event
    regions: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add_region(self, label: str, cells: np.ndarray) -> None:
        if cells.any():
            self.regions.setdefault(label, []).append(cells)


def empty_scene(preset: str, sc: ScanConverter, echo: float = 1.0) -> Scene:
    shape = sc.z_mm.shape
    return Scene(
        preset=preset,
        echo=np.full(shape, echo, np.float32),
        alpha=np.full(shape, SOFT_TISSUE_ALPHA, np.float32),
        specular=np.zeros(shape, np.float32),
        comet=np.zeros(shape, np.float32),
    )


def smooth_noise(sc: ScanConverter, rng: np.random.Generator, scale_mm: float) -> np.ndarray:
    """Zero-mean, unit-std random texture with a correlation length of about ``scale_mm``."""
    import cv2  # local: only scene building needs it here

    noise = rng.standard_normal(sc.z_mm.shape).astype(np.float32)
    sz = max(scale_mm / sc.geo.dz_mm, 0.5)
    sx = max(scale_mm / float(np.mean(sc.geo.lateral_mm_per_line(sc.z_mm[:, 0]))), 0.5)
    out = cv2.GaussianBlur(noise, (0, 0), sigmaX=sx, sigmaY=sz)
    return (out / max(float(out.std()), 1e-6)).astype(np.float32)


def band(y: np.ndarray, level: np.ndarray | float, thick_mm: float) -> np.ndarray:
    """Cells within ``thick_mm / 2`` of a curve ``y = level`` (Cartesian depth), i.e. an interface."""
    return np.abs(y - level) <= thick_mm / 2


def ellipse(
    sc: ScanConverter, cx: float, cy: float, ax: float, ay: float, angle_deg: float = 0.0, power: float = 2.0
) -> np.ndarray:
    """Normalised radius of a (super)ellipse in Cartesian mm: < 1 inside, 1 on the border."""
    a = np.radians(angle_deg)
    dx, dy = sc.x_mm - cx, sc.y_mm - cy
    xr = dx * np.cos(a) + dy * np.sin(a)
    yr = -dx * np.sin(a) + dy * np.cos(a)
    r: np.ndarray = (np.abs(xr / ax) ** power + np.abs(yr / ay) ** power) ** (1.0 / power)
    return r


def ring(r: np.ndarray, sc: ScanConverter, radius_mm: float, thick_mm: float) -> np.ndarray:
    """Cells on the border (r == 1) of a shape of typical radius ``radius_mm``."""
    return np.abs(r - 1.0) * radius_mm <= max(thick_mm, sc.geo.dz_mm) / 2


def body_wall(scene: Scene, sc: ScanConverter, rng: np.random.Generator, bottom_mm: float) -> None:
    """Skin, subcutaneous fat with septa, and striated muscle down to ``bottom_mm``, with fascia."""
    y = sc.y_mm
    fat_end = min(3.0 + rng.uniform(2, 5), bottom_mm * 0.4)
    scene.echo[y < 1.5] = 1.4
    fat = (y >= 1.5) & (y < fat_end)
    scene.echo[fat] = 0.45 * (1 + 0.3 * smooth_noise(sc, rng, 1.5)[fat])
    muscle = (y >= fat_end) & (y < bottom_mm)
    stri = 1 + 0.35 * np.sin(2 * np.pi * (y + 0.15 * sc.x_mm) / rng.uniform(1.5, 2.5))
    scene.echo[muscle] = (0.75 * stri)[muscle]
    for lvl, amp in ((fat_end, 1.3), ((fat_end + bottom_mm) / 2, 0.7)):
        scene.specular[band(y, lvl + 0.4 * np.sin(sc.x_mm / 9.0), 0.5)] = amp
