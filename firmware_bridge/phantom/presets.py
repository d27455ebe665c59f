"""Scene descriptions for the presets: lung, abdomen (FAST, Morison's pouch) and bladder.

Each builder draws on the beam grid in Cartesian mm (``sc.x_mm``, ``sc.y_mm``) so shapes look round
in the image, and records the ground-truth regions. Finding parameters come from the scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from firmware_bridge.phantom.geometry import ScanConverter
from firmware_bridge.phantom.scene import (
    BONE_ALPHA,
    FLUID_ALPHA,
    Scene,
    band,
    body_wall,
    ellipse,
    empty_scene,
    ring,
    smooth_noise,
)

Rng = np.random.Generator
PRESET_DEPTH_MM = {"lung": 100.0, "abdomen": 150.0, "bladder": 130.0}


def lung(sc: ScanConverter, rng: Rng, params: dict[str, Any]) -> Scene:
    """Intercostal view: ribs with shadows at the sides, pleural line, A-lines or B-lines below it."""
    s = empty_scene("lung", sc)
    x, y, u = sc.x_mm, sc.y_mm, sc.u
    p = float(params.get("pleura_mm", rng.uniform(14, 19)))
    body_wall(s, sc, rng, p - 1.0)
    pleura_y = p + 0.35 * np.sin(x / 7.0 + rng.uniform(0, 6)) + 0.2 * smooth_noise(sc, rng, 2.0)
    below = y > pleura_y + 0.6
    s.echo[below] = 0.22  # aerated lung: only artefacts and a faint shimmer
    # Ribs at both edges of the sector (the "bat sign"): a bright curved surface, a shadow below.
    rib_w = 0.085
    a_line_cols = np.ones_like(below)
    for uc in (0.0, 1.0):
        d = np.abs(u - uc) / rib_w
        top = p - 3.5 + 2.0 * d**2
        rib = (d < 1) & (y >= top)
        s.specular[rib & band(y, top, 0.9)] = 7.0
        s.alpha[rib & (y > top + 0.8)] = BONE_ALPHA
        a_line_cols &= d >= 1
    pleura = band(y, pleura_y, 1.0) & a_line_cols
    s.specular[pleura] = 8.0
    s.add_region("pleural_line", pleura)
    s.slide_row = float(np.percentile(sc.z_mm[pleura], 50) / sc.geo.dz_mm + 2) if pleura.any() else -1.0
    findings = np.zeros_like(below)  # columns where A-lines are erased
    n_b = int(params.get("b_line_count", 0))
    if n_b > 0:
        centres = np.linspace(0.2, 0.8, n_b + 2)[1:-1] if n_b > 1 else np.array([0.5])
        centres = centres + rng.uniform(-0.03, 0.03, n_b) * (n_b < 6)
        half = float(params.get("b_line_width_mm", 2.2)) / 2 / float(sc.geo.lateral_mm_per_line(p))
        for uc in centres:
            cols = np.abs(u - uc) * sc.geo.n_lines <= max(half, 1.0)
            bl = cols & below
            # Textured, undiminished to the bottom: the comet field has random phases per cell.
            s.comet[bl] = 4.0 * (1 + 0.25 * np.cos(2 * np.pi * y[bl] / 3.0))
            findings |= cols
            s.add_region("b_line", bl)
    if params.get("consolidation"):
        x0, x1 = np.percentile(x[pleura], [22, 68]) if pleura.any() else (-10.0, 10.0)
        deep = pleura_y + rng.uniform(28, 38) + 4 * np.sin(x / 3.0) + 2.5 * smooth_noise(sc, rng, 1.5)
        c = below & (x > x0) & (x < x1) & (y < deep)
        s.echo[c] = (1.1 * (1 + 0.2 * smooth_noise(sc, rng, 2.0)))[c]  # hepatised lung
        s.specular[c & (rng.random(c.shape) < 0.004)] = 6.0  # air bronchograms
        s.specular[below & (x > x0) & (x < x1) & band(y, deep, 1.0)] = 3.5  # shred sign
        findings |= (x > x0) & (x < x1)
        s.add_region("consolidation", c)
    if params.get("effusion"):
        x0, x1 = np.percentile(x[pleura], [20, 80]) if pleura.any() else (-15.0, 15.0)
        xm, hw = (x0 + x1) / 2, (x1 - x0) / 2
        lens = np.sqrt(np.clip(1 - ((x - xm) / hw) ** 2, 0, 1))  # a rounded lens of fluid
        thick = float(params.get("effusion_mm", 28.0)) * lens
        e = below & (y < pleura_y + 1 + thick) & (thick > 1.5)
        s.echo[e], s.alpha[e] = 0.0, FLUID_ALPHA
        lung_under = below & (y >= pleura_y + 1 + thick) & (y < pleura_y + 16 + 1.3 * thick) & (thick > 1.5)
        s.echo[lung_under] = 0.8  # compressed (atelectatic) lung floating in the fluid
        s.specular[band(y, pleura_y + 1 + thick, 1.0) & (thick > 1.5) & below] = 3.0
        findings |= (x > x0) & (x < x1)
        s.add_region("effusion", e)
    # A-lines: reverberations of the pleura at integer multiples of its depth, fading.
    for k, amp in ((2, 1.8), (3, 1.0), (4, 0.6), (5, 0.35)):
        s.specular[band(y, k * pleura_y, 1.4) & a_line_cols & ~findings & below] = amp
    return s


def abdomen(sc: ScanConverter, rng: Rng, params: dict[str, Any]) -> Scene:
    """Right upper quadrant (FAST): liver, kidney, diaphragm, vessels, optional Morison's fluid."""
    s = empty_scene("abdomen", sc)
    x, y = sc.x_mm, sc.y_mm
    wall = rng.uniform(16, 22)
    body_wall(s, sc, rng, wall)
    liver = y > wall + 1
    s.echo[liver] = (1.0 * (1 + 0.12 * smooth_noise(sc, rng, 6.0)))[liver]
    s.specular[band(y, wall + 1 + 0.5 * np.sin(x / 15), 0.8)] = 3.0  # liver capsule
    # Diaphragm: a bright curved interface deep on the left, lung mirror image beyond.
    dia = 95 + 0.012 * (x + 70) ** 2 + rng.uniform(-5, 5)
    beyond = (y > dia) & (x < 0)
    s.echo[beyond] = 0.7
    s.specular[band(y, dia, 1.5) & (x < 0)] = 6.0
    # Kidney: hypoechoic cortex, bright sinus fat, bright capsule.
    kx, ky = rng.uniform(15, 25), rng.uniform(85, 95)
    rk = ellipse(sc, kx, ky, 42, 22, angle_deg=rng.uniform(10, 25))
    s.echo[rk < 1] = 0.55
    s.echo[rk < 0.5] = 1.8
    s.specular[ring(rk, sc, 22, 0.8)] = 3.0
    # Hepatic / portal veins: anechoic circles, portal ones with bright walls.
    for _ in range(3):
        cx, cy, r = rng.uniform(-50, 10), rng.uniform(40, 80), rng.uniform(3, 6)
        rv = ellipse(sc, cx, cy, r, r)
        s.echo[rv < 1], s.alpha[rv < 1] = 0.0, FLUID_ALPHA
        s.specular[ring(rv, sc, r, 0.6)] = 1.5
    if params.get("free_fluid", False):
        # Morison's pouch: an anechoic stripe between the liver and the kidney's upper border.
        t = float(params.get("fluid_mm", 6.0))
        rf = ellipse(sc, kx, ky, 42 + t, 22 + t, angle_deg=0.0)
        stripe = (rk >= 1.05) & (rf < 1) & (y < ky) & liver
        s.echo[stripe], s.alpha[stripe] = 0.0, FLUID_ALPHA
        s.add_region("free_fluid", stripe)
    return s


def bladder(sc: ScanConverter, rng: Rng, params: dict[str, Any]) -> Scene:
    """Suprapubic view: anechoic rounded bladder, bright back wall, posterior acoustic enhancement."""
    s = empty_scene("bladder", sc, echo=0.8)
    y = sc.y_mm
    wall = rng.uniform(12, 18)
    body_wall(s, sc, rng, wall)
    deep = y > wall
    s.echo[deep] = (0.8 * (1 + 0.15 * smooth_noise(sc, rng, 5.0)))[deep]
    cy = wall + 4 + float(params.get("bladder_half_depth_mm", 28.0))
    ax = float(params.get("bladder_half_width_mm", 38.0))
    ay = float(params.get("bladder_half_depth_mm", 28.0))
    rb = ellipse(sc, rng.uniform(-5, 5), cy, ax, ay, power=2.3)
    inside = rb < 1
    s.echo[inside], s.alpha[inside] = 0.0, FLUID_ALPHA
    wall_cells = ring(rb, sc, ay, 1.2)
    s.specular[wall_cells & (y > cy)] = 6.0  # back wall: perpendicular, strong
    s.specular[wall_cells & (y <= cy)] = 2.0
    s.add_region("bladder", inside)
    return s


def no_contact(sc: ScanConverter, rng: Rng, params: dict[str, Any]) -> Scene:
    """Probe in air: no tissue, only ring-down of the transducer face (bands at its lens period)."""
    s = empty_scene("no_contact", sc, echo=0.0)
    s.contact = False
    period = float(params.get("ringdown_mm", rng.uniform(3.5, 7.0)))
    amp = float(params.get("ringdown_amp", rng.uniform(6, 12)))
    for k in range(9):
        s.specular[band(sc.y_mm, 0.6 + k * period, 0.9)] = amp * np.exp(-0.7 * k)
    return s


PRESETS: dict[str, Callable[[ScanConverter, Rng, dict[str, Any]], Scene]] = {
    "lung": lung,
    "abdomen": abdomen,
    "bladder": bladder,
}
