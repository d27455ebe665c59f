"""Synthetic, labelled degradations of ultrasound frames (pure numpy / OpenCV).

Every function takes a gray uint8 frame (HxW, full resolution, as the scanner shows it), the
frame's :class:`SectorGeometry` and a ``numpy.random.Generator``, and returns a new gray uint8
frame of the same shape. Pixels outside the imaged sector are left as they are: a real
degradation happens in the beam, not in the black surround of the display.

Intensities of a B-mode frame are already log-compressed, so receiver gain is an additive
offset and dynamic range a scale on the gray levels; a shadow multiplies the echo amplitude,
which in the log domain is also a subtraction, and is modelled here as an attenuation towards a
noise floor. Strengths are drawn at random in ranges wide enough that the label, not one
parameter setting, is learnt. The ranges are module constants so the model card can quote them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import cv2
import numpy as np

Rng = np.random.Generator

# Parameter ranges (low, high), quoted in the model card.
NO_CONTACT = {
    "band_spacing_frac": (0.03, 0.10),  # reverberation period, fraction of the sector depth
    "band_peak": (40.0, 190.0),  # gray level of the first (transducer-face) band
    "band_decay": (0.25, 0.9),  # per-band decay, exp(-k * decay)
    "floor": (0.0, 12.0),  # mean gray level of the noise floor
    "noise_sigma": (1.0, 8.0),
    "residual": (0.0, 0.08),  # faint remnant of tissue (e.g. a film of gel)
}
SHADOW = {
    "coverage": (0.55, 0.85),  # fraction of the sector's width in shadow (area >= SHADOW_MIN_AREA checked)
    "strength": (0.80, 0.98),  # attenuation of the echo in the shadow
    "start_depth": (0.0, 0.18),  # where the shadow starts, fraction of sector depth
    "edge_softness": (0.005, 0.04),  # lateral blur of the shadow's edges, fraction of width
}
GAIN_HIGH = {
    "offset": (35.0, 140.0),  # gray levels added (about +8 to +33 dB at 60 dB over 255 levels)
    "scale": (1.0, 1.7),  # contrast of the gained-up image
    "washed_scale": (0.5, 0.85),  # washed-out variant (35%): less contrast, offset >= 80
    "saturated_frac": (0.08, 0.40),  # at least this fraction of the sector is driven to 255 (lost)
    "noise_sigma": (2.0, 10.0),  # electronic noise made visible by the gain
}
GAIN_LOW = {
    "black_frac": (0.50, 0.92),  # fraction of the sector pushed below the display floor (lost)
    "scale": (0.4, 0.9),
    "tgc_slope": (0.0, 1.5),  # extra darkening with depth (time-gain compensation too low)
}
MILD = {
    "offset": (-10.0, 10.0),
    "scale": (0.9, 1.1),
    "noise_sigma": (0.0, 4.0),
    "blur_sigma": (0.0, 0.9),
}
SHADOW_MIN_AREA = 0.5
# What gain_low's black fraction is a fraction of. "sector" (the 2.x recipes): of every pixel in the
# sector, so on a view that is already half dark (deep far field, wide rib shadows) the "lost" half
# is mostly pixels that held no echo, and after the runtime's gain normalisation the rendered fault
# looks like the good frame. "echo": of the pixels that hold echo (above the sector's own dark level,
# ``ECHO_MARGIN`` over its 5th percentile), so the fault always loses that share of what was imaged
# (the 3.0 recipe).
GainLowBasis = Literal["sector", "echo"]
ECHO_MARGIN = 12.0  # gray levels over the sector's 5th percentile where echo begins
GAIN_LOW_BASIS: GainLowBasis = "echo"  # the 3.0 recipe
_gain_low_basis: GainLowBasis = GAIN_LOW_BASIS


def set_gain_low_basis(basis: GainLowBasis) -> None:
    """Measure gain_low's black fraction on this basis (in this process and workers forked after)."""
    global _gain_low_basis
    if basis not in get_args(GainLowBasis):
        raise ValueError(f"gain_low basis {basis!r}: expected one of {get_args(GainLowBasis)}")
    _gain_low_basis = basis


def gain_low_basis() -> GainLowBasis:
    return _gain_low_basis


# A shadow must leave some echo in view: a frame whose every imaged part is dark (the drawn shadow over
# a view already half in rib shadows or beyond the beam) cannot be told from no contact by anyone.
# With a share > 0, shadows are re-drawn until at least that share of the sector holds echo outside
# them (on the echo's definition above). 0.1 in the 3.0 recipe; 0 (the 2.x recipes) draws as 2.x did.
SHADOW_MIN_ECHO = 0.1  # the 3.0 recipe
_shadow_min_echo = SHADOW_MIN_ECHO


def set_shadow_min_echo(share: float) -> None:
    """Re-draw shadows that leave less than ``share`` of the sector's echo in view (this process and
    workers forked after)."""
    global _shadow_min_echo
    if not 0.0 <= share < 1.0 - SHADOW_MIN_AREA:
        raise ValueError(f"shadow min echo {share}: expected 0 <= share < {1.0 - SHADOW_MIN_AREA:g}")
    _shadow_min_echo = float(share)


def shadow_min_echo() -> float:
    return _shadow_min_echo


def echo_mask(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The sector's pixels that hold echo: ``ECHO_MARGIN`` over the sector's own 5th percentile."""
    inside = img[mask]
    if inside.size == 0:
        return np.zeros_like(mask, dtype=bool)
    return mask & (img >= float(np.percentile(inside, 5)) + ECHO_MARGIN)


@dataclass(frozen=True)
class SectorGeometry:
    """Beam coordinates of each pixel: ``u`` lateral (0 at one edge, 1 at the other, along rays
    from the apex for a convex probe) and ``v`` depth (0 at the skin line, 1 at the bottom).
    Both are NaN outside ``mask``. ``depth_px`` is the sector's depth in pixels."""

    mask: np.ndarray
    u: np.ndarray
    v: np.ndarray
    depth_px: float
    convex: bool


def _fit_edge(ys: np.ndarray, xs: np.ndarray, border: int, width: int) -> tuple[float, float] | None:
    """Line x = a*y + b through one edge of the sector, ignoring rows where it is cut by the border."""
    keep = (xs > 1) & (xs < width - 2) if border < 0 else np.ones_like(xs, bool)
    if keep.sum() < max(8, len(ys) // 5):
        return None
    a, b = np.polyfit(ys[keep].astype(np.float64), xs[keep].astype(np.float64), 1)
    return float(a), float(b)


def sector_geometry(mask: np.ndarray) -> SectorGeometry:
    """Estimate beam coordinates from a sector mask (convex fan, linear rectangle, or a crop)."""
    mask = mask.astype(bool)
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size < 4:
        raise ValueError("sector mask is (nearly) empty")
    y0, y1 = int(rows[0]), int(rows[-1])
    left = np.argmax(mask[rows], axis=1)
    right = w - 1 - np.argmax(mask[rows, ::-1], axis=1)
    mid = (rows >= y0 + 0.1 * (y1 - y0)) & (rows <= y0 + 0.9 * (y1 - y0))  # skip the rounded ends
    fl = _fit_edge(rows[mid], left[mid], -1, w) or (0.0, 0.0)
    fr = _fit_edge(rows[mid], right[mid], -1, w) or (0.0, float(w - 1))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    convex = abs(fl[0] - fr[0]) > 0.08
    apex_y = (fr[1] - fl[1]) / (fl[0] - fr[0]) if convex else 0.0
    if convex and apex_y > y0 + 0.2 * (y1 - y0):  # apex below the skin line: not a fan, treat as linear
        convex = False
    if convex:
        apex_x = fl[0] * apex_y + fl[1]
        theta = np.arctan2(xx - apex_x, yy - apex_y)
        th_l, th_r = np.arctan(fl[0]), np.arctan(fr[0])
        u = (theta - th_l) / (th_r - th_l)
        r = np.hypot(xx - apex_x, yy - apex_y)
        r_top, r_bot = np.percentile(r[mask], [0.5, 99.5])
        v = (r - r_top) / max(r_bot - r_top, 1.0)
        depth = float(r_bot - r_top)
    else:
        xl = fl[0] * yy + fl[1]
        xr = fr[0] * yy + fr[1]
        u = (xx - xl) / np.maximum(xr - xl, 1.0)
        v = (yy - y0) / max(y1 - y0, 1)
        depth = float(y1 - y0)
    u = np.clip(u, 0.0, 1.0).astype(np.float32)
    v = np.clip(v, 0.0, 1.0).astype(np.float32)
    u[~mask] = np.nan
    v[~mask] = np.nan
    return SectorGeometry(mask=mask, u=u, v=v, depth_px=max(depth, 1.0), convex=bool(convex))


def natural_shadow(img: np.ndarray, geo: SectorGeometry, bins: int = 24, ratio: float = 0.45) -> float:
    """Fraction of the sector (depth 10-80%) in beam directions much darker than the bright ones.

    Real frames already hold rib shadows; one whose shadows cover >= ~35-40% of the sector is a
    ``shadow`` frame by this model's definition and must not be used as a ``diagnostic`` example.
    A direction is dark when its mean level is below ``ratio`` x the 85th percentile of directions.
    """
    check_gray(img)
    v = np.nan_to_num(geo.v, nan=-1.0)
    band = geo.mask & (v >= 0.1) & (v <= 0.8)
    if not band.any():
        return 0.0
    b = np.clip((geo.u[band] * bins).astype(np.int64), 0, bins - 1)
    cnt = np.bincount(b, minlength=bins)
    mean = np.bincount(b, weights=img[band].astype(np.float64), minlength=bins) / np.maximum(cnt, 1)
    ref = np.percentile(mean[cnt > 0], 85)
    dark = (mean < ratio * ref) & (cnt > 0)
    return float(cnt[dark].sum() / cnt.sum())


def _u(low_high: tuple[float, float], rng: Rng) -> float:
    return float(rng.uniform(*low_high))


def _finish(out: np.ndarray, img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Clip to uint8 and keep the pixels outside the sector untouched."""
    res = img.copy()
    res[mask] = np.clip(np.rint(out[mask]), 0, 255).astype(np.uint8)
    return res


def grain(shape: tuple[int, int], rng: Rng, grain_px: float) -> np.ndarray:
    """Zero-mean, unit-variance noise with a speckle-like grain of about ``grain_px`` pixels."""
    h, w = shape
    gh, gw = max(2, int(h / grain_px)), max(2, int(w / grain_px))
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return big / max(float(big.std()), 1e-6)


def check_gray(img: np.ndarray) -> None:
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"expected a gray uint8 HxW frame, got {img.dtype} {img.shape}")


def reverberation(geo: SectorGeometry, rng: Rng) -> np.ndarray:
    """Probe-in-air echo: ring-down haze at the face and decaying bands repeating with depth.

    The bands follow the transducer face (arcs for a convex probe, rows for a linear one), as
    reverberations between the face and the lens do.
    """
    v = np.nan_to_num(geo.v, nan=1.0)
    spacing = _u(NO_CONTACT["band_spacing_frac"], rng)
    peak = _u(NO_CONTACT["band_peak"], rng)
    decay = _u(NO_CONTACT["band_decay"], rng)
    width = spacing * rng.uniform(0.12, 0.3)
    out = np.zeros_like(v)
    k = 0
    while k * spacing < 0.6 and peak * np.exp(-k * decay) > 3:
        out += peak * np.exp(-k * decay) * np.exp(-0.5 * ((v - k * spacing - width) / width) ** 2)
        k += 1
    out += peak * rng.uniform(0.1, 0.5) * np.exp(-v / rng.uniform(0.02, 0.08))  # ring-down haze
    # Lateral unevenness: the face is not coupled to air uniformly (element-to-element variation).
    u = np.nan_to_num(geo.u, nan=0.5)
    out *= 1.0 + rng.uniform(0.0, 0.35) * np.cos(2 * np.pi * (u * rng.uniform(0.5, 3.0) + rng.uniform()))
    return out.astype(np.float32)


def no_contact(img: np.ndarray, geo: SectorGeometry, rng: Rng) -> np.ndarray:
    """Probe in air: the sector goes nearly black, with reverberation bands near the face and noise."""
    check_gray(img)
    floor = _u(NO_CONTACT["floor"], rng)
    sigma = _u(NO_CONTACT["noise_sigma"], rng)
    residual = _u(NO_CONTACT["residual"], rng)
    noise = np.abs(grain(img.shape, rng, rng.uniform(1.0, 3.0))) * sigma
    out = reverberation(geo, rng) + floor + noise + residual * img.astype(np.float32)
    return _finish(out, img, geo.mask)


def shadow_field(
    geo: SectorGeometry, rng: Rng, kind: str | None = None, cover: float | None = None
) -> tuple[np.ndarray, str]:
    """Shadow weight in [0, 1] per pixel, and the kind of shadow (drawn where not given)."""
    kind = kind or str(rng.choice(["ribs", "edge", "centre"], p=[0.5, 0.35, 0.15]))
    cover = _u(SHADOW["coverage"], rng) if cover is None else cover
    if kind == "ribs":  # 1-3 rib shadows, the gaps between them imaged
        n = int(rng.integers(1, 4))
        widths = rng.dirichlet(np.ones(n)) * cover
        gaps = rng.dirichlet(np.ones(n + 1)) * (1.0 - cover)
        spans, pos = [], 0.0
        for i in range(n):
            pos += gaps[i]
            spans.append((pos, pos + widths[i]))
            pos += widths[i]
    elif kind == "edge":  # one edge of the probe lifted off the skin
        spans = [(0.0, cover)] if rng.random() < 0.5 else [(1.0 - cover, 1.0)]
    else:  # poor coupling in the middle (air bubble under the gel, a dressing)
        c = rng.uniform(cover / 2, 1 - cover / 2)
        spans = [(c - cover / 2, c + cover / 2)]
    u = np.nan_to_num(geo.u, nan=-1.0)
    v = np.nan_to_num(geo.v, nan=-1.0)
    lateral = np.zeros_like(u)
    for a, b in spans:
        lateral = np.maximum(lateral, ((u >= a) & (u <= b)).astype(np.float32))
    soft = _u(SHADOW["edge_softness"], rng) * geo.mask.shape[1]
    if soft >= 0.5:
        lateral = cv2.GaussianBlur(lateral, (0, 0), sigmaX=soft, sigmaY=0.1)
    start = 0.0 if kind == "edge" else _u(SHADOW["start_depth"], rng)
    depth = np.clip((v - start) / 0.03, 0.0, 1.0)  # the shadow begins just under the rib / the skin
    return (lateral * depth * geo.mask).astype(np.float32), kind


def shadow(img: np.ndarray, geo: SectorGeometry, rng: Rng) -> np.ndarray:
    """Dark wedge(s) from the skin line down over >= half the sector (ribs, lifted edge, poor coupling).

    Inside the shadow the echo is attenuated towards a noise floor; a rib shadow may be capped by
    the bright rib surface; a lifted edge may show reverberation bands, as a probe in air does.
    Wedges are re-drawn until they cover at least SHADOW_MIN_AREA of the sector's pixels (and,
    with ``set_shadow_min_echo``, leave that share of the sector's echo in view).
    """
    check_gray(img)
    echo = echo_mask(img, geo.mask) if _shadow_min_echo else None
    n_sector = max(int(geo.mask.sum()), 1)
    for _ in range(8):
        field, kind = shadow_field(geo, rng)
        if (field[geo.mask] > 0.5).mean() < SHADOW_MIN_AREA + 0.01:
            continue
        if echo is None or (echo & (field < 0.5)).sum() / n_sector >= _shadow_min_echo:
            break
    else:  # narrow sectors with a deep start: fall back to a lifted edge covering half the width
        u = np.nan_to_num(geo.u, nan=-1.0)
        field = ((u >= 0) & (u <= 0.55)).astype(np.float32) * geo.mask
        kind = "edge"
    strength = _u(SHADOW["strength"], rng)
    x = img.astype(np.float32)
    floor = rng.uniform(0.0, 10.0) + np.abs(grain(img.shape, rng, rng.uniform(1.0, 3.0))) * rng.uniform(1, 6)
    out = x * (1.0 - strength * field) + field * floor
    if kind == "edge" and rng.random() < 0.5:
        out += field * reverberation(geo, rng)
    if kind == "ribs" and rng.random() < 0.6:  # bright, thin rib surface capping each shadow
        v = np.nan_to_num(geo.v, nan=-1.0)
        top = np.min(v[field > 0.5]) if (field > 0.5).any() else 0.0
        cap = np.exp(-0.5 * ((v - top) / rng.uniform(0.004, 0.012)) ** 2) * (field > 0.2)
        out += cap * rng.uniform(30.0, 110.0)
    return _finish(out, img, geo.mask)


def gain_high(img: np.ndarray, geo: SectorGeometry, rng: Rng) -> np.ndarray:
    """Gain too high: an offset (and contrast) added to the log-compressed levels, clipped at 255.

    The black level inside the sector rises with the offset and at least 8-40% of the sector
    saturates (information a normalisation cannot bring back); in the washed-out variant contrast
    drops as well. Electronic noise becomes visible.
    """
    check_gray(img)
    x = img.astype(np.float32)
    offset = _u(GAIN_HIGH["offset"], rng)
    washed = rng.random() < 0.35
    scale = _u(GAIN_HIGH["washed_scale" if washed else "scale"], rng)
    if washed:
        offset = max(offset, 80.0)
    # Too much gain saturates the strongest echoes: at least a drawn fraction of the sector hits 255
    # (a dark frame needs a larger offset for that than a bright one).
    sat = _u(GAIN_HIGH["saturated_frac"], rng)
    offset = max(offset, 258.0 - scale * float(np.percentile(x[geo.mask], 100 * (1 - sat))))
    noise = grain(img.shape, rng, rng.uniform(1.0, 3.0)) * _u(GAIN_HIGH["noise_sigma"], rng)
    out = x * scale + offset + noise
    return _finish(out, img, geo.mask)


def gain_low(img: np.ndarray, geo: SectorGeometry, rng: Rng) -> np.ndarray:
    """Gain too low: levels shifted down (and contrast reduced) so weak echoes drop to black.

    Half or more of the sector (of its echo, on the "echo" basis: ``set_gain_low_basis``) goes
    below the display floor (crushed: lost to any normalisation, unlike a merely darker display,
    which is a scanner look); optionally the far field is darkened further, as when time-gain
    compensation is turned down.
    """
    check_gray(img)
    x = img.astype(np.float32)
    inside = x[geo.mask]
    black = _u(GAIN_LOW["black_frac"], rng)
    scale = _u(GAIN_LOW["scale"], rng)
    basis = inside
    if _gain_low_basis == "echo":
        echo = x[echo_mask(img, geo.mask)]
        basis = echo if echo.size >= 0.05 * inside.size else inside  # a blank sector: all of it
    q = float(np.percentile(basis, 100 * black))
    offset = max(q, 12.0)
    v = np.nan_to_num(geo.v, nan=0.0)
    tgc = np.exp(-_u(GAIN_LOW["tgc_slope"], rng) * v) if rng.random() < 0.5 else 1.0
    out = (x - offset) * scale * tgc
    out = np.maximum(out, 0.0) + np.abs(grain(img.shape, rng, 1.5)) * rng.uniform(0.0, 2.5)
    # A dark frame must end up clearly darker than it was: at most 60% of its mean level.
    mean_in, mean_out = float(inside.mean()), float(out[geo.mask].mean())
    if mean_out > 0.6 * mean_in:
        out *= 0.6 * mean_in / max(mean_out, 1e-6)
    return _finish(out, img, geo.mask)


def mild(img: np.ndarray, geo: SectorGeometry, rng: Rng) -> np.ndarray:
    """Acceptable variation: small gain / contrast jitter, noise and blur (the diagnostic class)."""
    check_gray(img)
    x = img.astype(np.float32)
    out = x * _u(MILD["scale"], rng) + _u(MILD["offset"], rng)
    sigma = _u(MILD["blur_sigma"], rng)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma)  # type: ignore[assignment]
    out = out + grain(img.shape, rng, rng.uniform(1.0, 2.5)) * _u(MILD["noise_sigma"], rng)
    return _finish(out, img, geo.mask)


Degradation = Callable[[np.ndarray, SectorGeometry, Rng], np.ndarray]
DEGRADATIONS: dict[str, Degradation] = {
    "diagnostic": mild,
    "no_contact": no_contact,
    "shadow": shadow,
    "gain_high": gain_high,
    "gain_low": gain_low,
}
