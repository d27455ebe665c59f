"""Image formation: scatterers -> IQ beam grid -> PSF -> envelope -> attenuation/TGC -> log -> uint8.

The simulation is in baseband (IQ): each scatterer adds ``a * exp(i * 4 pi z / lambda)`` to its
cell, so the carrier phase is carried by the scatterer depth and the PSF is a real Gaussian
envelope: axial width from the pulse length (cycles at the centre frequency), lateral width growing
with depth (a fixed-focus beam). Interference of many random phasors per resolution cell gives
fully developed speckle; moving the scatterers moves (and, when re-drawn, decorrelates) it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from firmware_bridge.phantom.geometry import ProbeGeometry, ScanConverter

FWHM_TO_SIGMA = 1.0 / 2.3548


@dataclass(frozen=True)
class Physics:
    density_per_mm2: float = 3.0  # scatterers per mm^2 of the imaged plane
    pulse_cycles: float = 3.0  # axial pulse length (two-way FWHM = cycles x lambda / 2)
    beam_fwhm_mm: tuple[float, float] = (0.9, 2.8)  # lateral FWHM at skin / full depth, at 3.5 MHz
    atten_db_cm_mhz: float = 0.5  # nominal soft tissue attenuation (one-way)
    tgc_compensation: float = 0.9  # fraction of the nominal attenuation the TGC undoes (imperfect)
    tgc_ripple_db: float = 1.5  # slider-to-slider unevenness of the TGC curve
    dynamic_range_db: float = 60.0
    tissue_db: float = -31.0  # where unit echogenicity (rms) lands, dB below the top of the display
    noise_db: float = -95.0  # receiver noise rms before TGC, relative to the top of the display


class Psf:
    """Separable PSF kernels for one geometry: one axial kernel, lateral kernels blended by depth."""

    def __init__(self, geo: ProbeGeometry, phys: Physics) -> None:
        sig_ax = phys.pulse_cycles * geo.wavelength_mm / 2 * FWHM_TO_SIGMA / geo.dz_mm
        self.axial = _gauss(max(sig_ax, 0.5))
        depths = np.linspace(0.0, geo.depth_mm, 3)
        z = (np.arange(geo.n_depth, dtype=np.float32) + 0.5) * geo.dz_mm
        self.lateral: list[np.ndarray] = []
        f_scale = 3.5 / geo.center_mhz  # beam width scales with the wavelength
        for d in depths:
            frac = d / geo.depth_mm
            fwhm = f_scale * (phys.beam_fwhm_mm[0] + (phys.beam_fwhm_mm[1] - phys.beam_fwhm_mm[0]) * frac)
            self.lateral.append(_gauss(max(fwhm * FWHM_TO_SIGMA / float(geo.lateral_mm_per_line(d)), 0.5)))
        # Linear interpolation weights between the depth nodes (hat functions), one column each.
        step = depths[1] - depths[0]
        self.weights = [np.clip(1 - np.abs(z - d) / step, 0, 1).reshape(-1, 1, 1) for d in depths]
        # Energy of the 2-D kernel at the middle depth, to calibrate the display level.
        self.energy = float((self.axial**2).sum() * (self.lateral[1] ** 2).sum())

    def apply(self, iq: np.ndarray) -> np.ndarray:
        """Filter a (n_depth, n_lines, 2) float32 IQ grid; returns the same shape."""
        out = np.zeros_like(iq)
        for lat, w in zip(self.lateral, self.weights):
            f = cv2.sepFilter2D(iq, cv2.CV_32F, lat, self.axial, borderType=cv2.BORDER_REFLECT)
            out += f * w
        return out


def _gauss(sigma: float) -> np.ndarray:
    r = int(np.ceil(3 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float32)
    return np.exp(-0.5 * (x / sigma) ** 2).astype(np.float32)


class Scatterers:
    """A persistent field of point scatterers in beam-grid coordinates (row, line), with amplitudes."""

    def __init__(self, geo: ProbeGeometry, sc: ScanConverter, density: float, rng: np.random.Generator):
        area = float(np.sum(geo.dz_mm * np.asarray(geo.lateral_mm_per_line(sc.z_mm[:, 0]))) * geo.n_lines)
        self.n = int(density * area)
        self.geo = geo
        self.row = np.empty(self.n, np.float32)
        self.col = np.empty(self.n, np.float32)
        self.amp = np.empty(self.n, np.float32)
        self.redraw(np.arange(self.n), rng)

    def redraw(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        """New scatterers at the given indices: an elevational step brings new tissue into the slice."""
        k = idx.size
        # Depth density grows with depth for a convex probe (lines diverge): draw r^1 proportionally.
        g = self.geo
        if g.kind == "convex":
            r0, r1 = g.radius_mm, g.radius_mm + g.depth_mm
            r = np.sqrt(rng.uniform(r0 * r0, r1 * r1, k))
            # float32 rounding can put a draw at r1 exactly, one row past the grid: keep it inside.
            self.row[idx] = np.minimum((r - r0) / g.dz_mm, np.nextafter(np.float32(g.n_depth), 0))
        else:
            self.row[idx] = rng.uniform(0, g.n_depth, k)
        self.col[idx] = rng.uniform(0, g.n_lines, k)
        self.amp[idx] = rng.standard_normal(k)

    def renew(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        """New lateral position and amplitude at the same depth (lung moving through the slice)."""
        self.col[idx] = rng.uniform(0, self.geo.n_lines, idx.size)
        self.amp[idx] = rng.standard_normal(idx.size)

    def move(self, d_col: float, d_row: float = 0.0, below_row: float = -1.0) -> None:
        """Translate scatterers (those deeper than ``below_row``) by a fraction of a cell; wraps."""
        sel = self.row > below_row if below_row >= 0 else slice(None)
        if d_col:
            self.col[sel] = np.mod(self.col[sel] + d_col, self.geo.n_lines)
        if d_row:
            self.row[sel] = np.mod(self.row[sel] + d_row, self.geo.n_depth)

    def splat(self, gain: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Sum the scatterers' phasors into ``out`` (n_depth, n_lines, 2), bilinear across lines.

        ``gain`` (n_depth x n_lines) is echogenicity x two-way attenuation at each cell."""
        g = self.geo
        ri = np.minimum(self.row.astype(np.int32), g.n_depth - 1)
        cf = self.col - 0.5
        c0 = np.floor(cf).astype(np.int32)
        fc = (cf - c0).astype(np.float32)
        c0 %= g.n_lines
        c1 = (c0 + 1) % g.n_lines  # wrap: the field is periodic laterally (sliding keeps density)
        a = self.amp * gain[ri, c0]
        ph = (self.row * np.float32(4 * np.pi * g.dz_mm / g.wavelength_mm)).astype(np.float32)
        re, im = a * np.cos(ph), a * np.sin(ph)
        n = g.n_depth * g.n_lines
        i0, i1 = ri * g.n_lines + c0, ri * g.n_lines + c1
        flat = out.reshape(n, 2)
        for idx, w in ((i0, 1 - fc), (i1, fc)):
            flat[:, 0] += np.bincount(idx, re * w, n).astype(np.float32)
            flat[:, 1] += np.bincount(idx, im * w, n).astype(np.float32)
        return out


def depth_phase(geo: ProbeGeometry) -> np.ndarray:
    """Carrier phase of a coherent interface at each depth (cos, sin), (n_depth, 1, 2)."""
    z = (np.arange(geo.n_depth, dtype=np.float32) + 0.5) * geo.dz_mm
    ph = 4 * np.pi * z / geo.wavelength_mm
    return np.stack([np.cos(ph), np.sin(ph)], axis=-1).reshape(-1, 1, 2).astype(np.float32)


def two_way_attenuation(geo: ProbeGeometry, alpha: np.ndarray) -> np.ndarray:
    """Amplitude factor 10^(-dB/20) with dB = 2 x f0 x integral of alpha (dB/cm/MHz) over depth."""
    db = 2.0 * geo.center_mhz * np.cumsum(alpha, axis=0, dtype=np.float32) * (geo.dz_mm / 10.0)
    return np.power(10.0, -db / 20.0).astype(np.float32)


def tgc_curve(geo: ProbeGeometry, phys: Physics, rng: np.random.Generator) -> np.ndarray:
    """Receive gain (amplitude) per depth: most of the nominal attenuation, with some ripple."""
    z = (np.arange(geo.n_depth, dtype=np.float32) + 0.5) * geo.dz_mm
    db = phys.tgc_compensation * 2 * geo.center_mhz * phys.atten_db_cm_mhz * z / 10.0
    nodes = rng.uniform(-phys.tgc_ripple_db, phys.tgc_ripple_db, 8)  # eight sliders
    db = db + np.interp(z, np.linspace(0, geo.depth_mm, 8), nodes)
    return np.power(10.0, db / 20.0).astype(np.float32).reshape(-1, 1)


def log_compress(env: np.ndarray, ref: float, gain_db: float, dr_db: float) -> np.ndarray:
    """uint8 gray = 255 x (20 log10(env / ref) + gain + DR) / DR, clipped."""
    scale = 255.0 / dr_db
    lg = cv2.log(np.maximum(env, np.float32(1e-12)))
    k = np.float32(20.0 / np.log(10.0) * scale)
    off = np.float32((gain_db + dr_db - 20.0 * np.log10(ref)) * scale)
    return cv2.convertScaleAbs(np.maximum(lg * k + off, 0), alpha=1.0)
