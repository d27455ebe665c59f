"""The stateful simulator: a persistent scatterer field imaged through a scene, frame after frame.

``Simulator.image()`` is pure given its state; ``advance()`` moves the probe (and the lung) by one
frame. Everything per geometry (scan-conversion maps, PSF kernels, TGC, noise bank) is built once.
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.phantom.geometry import ProbeGeometry, scan_converter
from firmware_bridge.phantom.physics import (
    Physics,
    Psf,
    Scatterers,
    depth_phase,
    log_compress,
    tgc_curve,
    two_way_attenuation,
)
from firmware_bridge.phantom.scene import SOFT_TISSUE_ALPHA, Scene, smooth_noise

NOISE_BANK = 4


class Simulator:
    def __init__(self, geo: ProbeGeometry, phys: Physics, rng: np.random.Generator) -> None:
        self.geo, self.phys, self.rng = geo, phys, rng
        self.sc = scan_converter(geo)
        self.psf = Psf(geo, phys)
        self.scat = Scatterers(geo, self.sc, phys.density_per_mm2, rng)
        self.tgc = tgc_curve(geo, phys, rng)
        self.phase = depth_phase(geo)
        # Unit echogenicity = scatterers of unit rms amplitude at the mean density per cell.
        per_cell = self.scat.n / (geo.n_depth * geo.n_lines)
        self.unit = float(np.sqrt(per_cell))
        tissue_rms = self.unit * np.sqrt(self.psf.energy)
        self.ref = float(tissue_rms * 10 ** (-phys.tissue_db / 20))  # envelope at the top of the display
        noise_rms = self.ref * 10 ** (phys.noise_db / 20) / np.sqrt(2)
        shape = (geo.n_depth, geo.n_lines, 2)
        # Receiver noise passes the same receive filter as the echoes: it looks like fine speckle.
        self.noise = []
        for _ in range(NOISE_BANK):
            n = self.psf.apply(rng.standard_normal(shape).astype(np.float32))
            self.noise.append((n * (noise_rms / max(float(n.std()), 1e-9))).astype(np.float32))
        alpha0 = np.full((geo.n_depth, geo.n_lines), SOFT_TISSUE_ALPHA, np.float32)
        self.nominal_att = two_way_attenuation(geo, alpha0)
        self.scene: Scene | None = None
        self.iq = np.zeros(shape, np.float32)
        self.frame = 0

    def set_scene(self, scene: Scene) -> None:
        """Precompute what is static while the scene holds: per-cell gain and the coherent IQ."""
        att = two_way_attenuation(self.geo, scene.alpha)
        self.gain = (scene.echo * att).astype(np.float32)
        # Real interfaces are rough: their echo varies along the line, so no perfectly even stripes.
        rough = np.clip(1 + 0.3 * smooth_noise(self.sc, self.rng, 1.5), 0.2, None)
        spec = (scene.specular * rough * att * self.unit)[..., None] * self.phase
        ph = self.rng.uniform(0, 2 * np.pi, scene.comet.shape).astype(np.float32)
        comet = (scene.comet * self.nominal_att * self.unit)[..., None]
        comet = comet * np.stack([np.cos(ph), np.sin(ph)], axis=-1)
        self.static_iq = (spec + comet).astype(np.float32)
        self.scene = scene

    def advance(
        self,
        lateral_lines: float = 0.0,
        redraw_fraction: float = 0.0,
        slide_lines: float = 0.0,
        axial_rows: float = 0.0,
    ) -> None:
        """One frame of motion: probe translation (lines, rows), elevational change (re-drawn
        fraction of scatterers) and lung sliding (lateral shift below the pleura)."""
        self.scat.move(lateral_lines, axial_rows)
        if slide_lines and self.scene is not None and self.scene.slide_row >= 0:
            self.scat.move(slide_lines, below_row=self.scene.slide_row)
            # The sliding lung also moves through the elevational slice: part of its speckle renews.
            deep = np.flatnonzero(self.scat.row > self.scene.slide_row)
            k = int(0.25 * abs(slide_lines) * deep.size)
            if k:
                self.scat.renew(self.rng.choice(deep, k, replace=False), self.rng)
        k = round(redraw_fraction * self.scat.n)
        if k > 0:
            self.scat.redraw(self.rng.choice(self.scat.n, k, replace=False), self.rng)
        self.frame += 1

    def envelope(self) -> np.ndarray:
        """Envelope (after TGC) of the current state, (n_depth, n_lines) float32."""
        iq = self.iq
        iq[...] = self.static_iq
        self.scat.splat(self.gain, iq)
        rf = self.psf.apply(iq)
        rf += self.noise[self.frame % NOISE_BANK]
        env = np.sqrt(rf[..., 0] ** 2 + rf[..., 1] ** 2)
        return env * self.tgc

    def image(self, gain_db: float = 0.0, blur_steps: int = 0, blur_lines: float = 1.5) -> np.ndarray:
        """The uint8 output image. ``blur_steps`` > 0: average intensity over sub-frames while moving."""
        if self.scene is None:
            raise RuntimeError("set_scene() first")
        env = self.envelope()
        if blur_steps > 0:
            acc = env * env
            for _ in range(blur_steps):
                self.scat.move(blur_lines)
                self.scat.redraw(self.rng.choice(self.scat.n, self.scat.n // 10, replace=False), self.rng)
                e = self.envelope()
                acc += e * e
            env = np.sqrt(acc / (blur_steps + 1))
        beam = log_compress(env, self.ref, gain_db, self.phys.dynamic_range_db)
        return self.sc.convert(beam)
