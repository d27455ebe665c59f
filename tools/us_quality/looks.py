"""Scanner looks and sector geometry: the variation a good frame may show and still be diagnostic.

Every sample (of every class) first gets another scanner's look, then its class's degradation
(``degrade``). A look is what a normalisation of the sector absorbs or a reader accepts: overall
brightness (receive gain x0.4-x1.6 on the displayed levels), gray map (gamma 0.6-1.6, an S-curve,
a lifted black), time-gain compensation slopes, speckle blur and noise, display resolution, the
sector's shape and placement (flips, crops, fans and rectangles, black borders), narrow rib
shadows (anatomy of a good intercostal view, ``RIB_LOOK``) and a far field beyond the beam's
penetration (a depth set deeper than the probe reaches, ``DEPTH_LOOK``). A look never
destroys information on purpose: brightening is limited so that at most ``MAX_CLIPPED`` of
the sector newly saturates, darkening so that the sector's 99th percentile stays above
``MIN_P99``; beyond those it is a gain fault (``degrade.gain_high`` / ``gain_low``), not a look.
"""

from __future__ import annotations

import cv2
import numpy as np

from tools.us_quality.degrade import (
    DEGRADATIONS,
    Rng,
    SectorGeometry,
    check_gray,
    grain,
    mild,
    sector_geometry,
    shadow_field,
)

# Parameter ranges, quoted in the model card.
LOOK: dict[str, tuple[float, float]] = {
    "gain": (0.4, 1.6),  # factor on the displayed levels (log-uniform)
    "gamma": (0.6, 1.6),  # gray map (log-uniform); 0 stays 0, 255 stays 255
    "s_curve": (0.0, 0.6),  # strength of a sigmoid gray map (30% of looks)
    "black_lift": (0.0, 25.0),  # raised display black level (20% of looks)
    "tgc_slope": (-0.6, 0.6),  # exp(slope * (depth - 0.5)) (50% of looks)
    "blur_sigma": (0.5, 1.6),  # speckle smoothing, pixels (40% of looks)
    "noise_sigma": (0.0, 4.0),
}
# Rib shadows of an intercostal view are anatomy, not a fault: a look may hold 1-2 of them.
RIB_LOOK_P = 0.35  # share of samples given rib shadows
RIB_LOOK: dict[str, tuple[float, float]] = {"coverage": (0.08, 0.35), "strength": (0.5, 0.95)}
# A depth set beyond the probe's penetration: the far field fades to the noise floor. The near field,
# where the pleura and the B-lines are read, stays imaged, so the frame is diagnostic; the faded
# share is kept below half the sector, where ``gain_low`` (most of the sector crushed) begins.
DEPTH_LOOK_P = 0.3
_depth_look_p = DEPTH_LOOK_P
DEPTH_LOOK: dict[str, tuple[float, float]] = {"faded_area": (0.1, 0.4), "fade_depth": (0.05, 0.25)}
# A convex clip cropped to a rectangle inside its fan (a display or an export that shows only the
# rectangle): where the view unrolls fans (``"scanlines"``), such a clip is shown as a rectangle and
# would otherwise be met only in linear clips. 0.2 in the 3.0 recipe; 0 (the 2.x recipes) draws as
# 2.x did; ``grouped_cv --rect-crop`` measures another share.
RECT_CROP_P = 0.2  # the 3.0 recipe
_rect_crop_p = RECT_CROP_P


def set_rect_crop(p: float) -> None:
    """Give this share of fan samples (in this process and workers forked after) a rectangle crop."""
    global _rect_crop_p
    _rect_crop_p = float(p)


def rect_crop() -> float:
    return _rect_crop_p


def set_depth_look(p: float) -> None:
    """Give this share of samples a far field beyond the beam's reach (``beyond_penetration``), in
    this process and workers forked after: how ``grouped_cv --depth-look-p`` measures another share."""
    global _depth_look_p
    _depth_look_p = float(p)


def depth_look() -> float:
    return _depth_look_p


MAX_CLIPPED = 0.01  # fraction of the sector a look may newly saturate
MIN_P99 = 45.0  # a look keeps the sector's 99th percentile above this gray level


def _logu(lo_hi: tuple[float, float], rng: Rng) -> float:
    return float(np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]))))


def scanner_look(img: np.ndarray, mask: np.ndarray, rng: Rng) -> np.ndarray:
    """The frame as another scanner, preset or display would plausibly show it (see the module doc)."""
    mask = mask.astype(bool)
    x = img.astype(np.float32)
    inside = x[mask]
    if inside.size == 0:
        return img.copy()
    if rng.random() < 0.5:
        v = np.nan_to_num(sector_geometry(mask).v, nan=0.5)
        x = x * np.exp(rng.uniform(*LOOK["tgc_slope"]) * (v - 0.5))
    gain = _logu(LOOK["gain"], rng)
    already = float((inside >= 254).mean())
    # No more than max_clipped of the sector may newly saturate: beyond that the look is a gain fault.
    top = float(np.percentile(x[mask], 100 * (1 - already - MAX_CLIPPED)))
    gain = min(gain, 254.0 / max(top, 1.0)) if top > 0 else gain
    x = x * gain
    lut = np.arange(256, dtype=np.float32) / 255.0
    lut = lut ** _logu(LOOK["gamma"], rng)
    if rng.random() < 0.3:
        k = rng.uniform(*LOOK["s_curve"]) * 10.0
        if k > 0.5:
            s = 1 / (1 + np.exp(-k * (lut - 0.5)))
            lut = (s - s[0]) / (s[-1] - s[0])
    if rng.random() < 0.2:
        b = rng.uniform(*LOOK["black_lift"]) / 255.0
        lut = b + (1 - b) * lut
    table = np.clip(np.rint(255.0 * lut), 0, 255).astype(np.uint8)
    out: np.ndarray = cv2.LUT(np.clip(np.rint(x), 0, 255).astype(np.uint8), table)
    p99 = float(np.percentile(out[mask], 99))
    if p99 < MIN_P99:  # too dark to be a look: scale back up to the floor of looks
        out = np.clip(np.rint(out.astype(np.float32) * (MIN_P99 / max(p99, 1.0))), 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=rng.uniform(*LOOK["blur_sigma"]))
    sigma = rng.uniform(*LOOK["noise_sigma"])
    if sigma > 0.5:
        noisy = out.astype(np.float32) + rng.standard_normal(out.shape).astype(np.float32) * sigma
        out = np.rint(np.clip(noisy, 0, 255)).astype(np.uint8)
    # Gray maps and noise can push bright echoes over the top too: scale back so no more than
    # MAX_CLIPPED of the sector is newly at white.
    inside = out[mask].astype(np.float32)
    if (inside >= 254).mean() > already + MAX_CLIPPED:
        top = float(np.percentile(inside, 100 * (1 - already - MAX_CLIPPED)))
        out = np.rint(out.astype(np.float32) * (250.0 / max(top, 1.0))).clip(0, 255).astype(np.uint8)
    res = img.copy()
    res[mask] = out[mask]
    return res


def rib_shadows(img: np.ndarray, geo: SectorGeometry, rng: Rng) -> np.ndarray:
    """1-2 rib shadows over ``RIB_LOOK["coverage"]`` of the sector's width: what a good intercostal
    lung view shows (the ``shadow`` fault starts at more than half the sector)."""
    cover = float(rng.uniform(*RIB_LOOK["coverage"]))
    field, _ = shadow_field(geo, rng, kind="ribs", cover=cover)
    strength = float(rng.uniform(*RIB_LOOK["strength"]))
    out = img.astype(np.float32) * (1.0 - strength * field)
    res = img.copy()
    res[geo.mask] = np.clip(np.rint(out[geo.mask]), 0, 255).astype(np.uint8)
    return res


def beyond_penetration(img: np.ndarray, geo: SectorGeometry, rng: Rng) -> np.ndarray:
    """The deepest ``DEPTH_LOOK["faded_area"]`` of the sector fades to a speckled noise floor over
    ``DEPTH_LOOK["fade_depth"]`` of the depth: a good near field above a far field the beam never reached."""
    v = geo.v[geo.mask]
    if v.size == 0:
        return img.copy()
    faded = float(rng.uniform(*DEPTH_LOOK["faded_area"]))
    start = float(np.quantile(v, 1.0 - faded))
    fade = float(rng.uniform(*DEPTH_LOOK["fade_depth"]))
    depth = np.nan_to_num(geo.v, nan=0.0)
    keep = np.clip(1.0 - (depth - start) / fade, 0.0, 1.0) ** 2
    floor = rng.uniform(2.0, 14.0) + np.abs(grain(img.shape, rng, rng.uniform(1.0, 3.0))) * rng.uniform(1, 6)
    out = img.astype(np.float32) * keep + (1.0 - keep) * floor
    res = img.copy()
    res[geo.mask] = np.clip(np.rint(out[geo.mask]), 0, 255).astype(np.uint8)
    return res


def fan_mask(h: int, w: int, rng: Rng) -> np.ndarray:
    """A random convex-probe fan (apex above the frame) or linear rectangle, as a bool mask."""
    m = np.zeros((h, w), np.uint8)
    if rng.random() < 0.75:
        half = np.deg2rad(rng.uniform(22, 42))
        top = rng.uniform(0.0, 0.08) * h
        r0 = rng.uniform(0.15, 0.6) * h  # apex distance above the skin line
        r1 = r0 + (h - top) * rng.uniform(0.8, 1.0)
        cx = w / 2 + rng.uniform(-0.05, 0.05) * w
        cy = top - r0
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot(xx - cx, yy - cy)
        th = np.arctan2(xx - cx, yy - cy)
        m = ((r >= r0) & (r <= r1) & (np.abs(th) <= half)).astype(np.uint8)
    else:
        x0, x1 = rng.uniform(0.0, 0.15) * w, rng.uniform(0.85, 1.0) * w
        y0, y1 = rng.uniform(0.0, 0.08) * h, rng.uniform(0.85, 1.0) * h
        m[int(y0) : int(y1), int(x0) : int(x1)] = 1
    if m.sum() < 0.1 * h * w:
        m[:] = 1
    return m.astype(bool)


def inscribed_rectangle(mask: np.ndarray, rng: Rng) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 (exclusive) of a rectangle inside a fan-shaped mask, wide as the fan at a row
    near its top and deep as the fan reaches under that width; None for a mask that is already
    (nearly) a rectangle or whose rectangle would be under 32 pixels a side."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    top, bottom = int(ys.min()), int(ys.max()) + 1
    box = (bottom - top) * (int(xs.max()) + 1 - int(xs.min()))
    if ys.size > 0.97 * box:
        return None
    y0 = top + int(rng.uniform(0.0, 0.2) * (bottom - top))
    row = np.flatnonzero(mask[y0])
    if row.size < 32:
        return None
    shrink = int(rng.uniform(0.0, 0.05) * row.size)
    x0, x1 = int(row[0]) + shrink, int(row[-1]) + 1 - shrink
    below = ~mask[y0:, x0:x1]  # the first row under y0 that leaves the fan, per column
    ends = np.where(below.any(0), below.argmax(0), below.shape[0])
    y1 = y0 + int(ends.min())
    if x1 - x0 < 32 or y1 - y0 < 32:
        return None
    return x0, y0, x1, y1


def augment_geometry(img: np.ndarray, mask: np.ndarray, rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    """Flip, crop, rescale, re-frame and re-mask a frame so sector shape and size vary.

    Only left-right flips: the transducer face is always at the top of a B-mode display.
    """
    check_gray(img)
    img, mask = img.copy(), mask.astype(bool).copy()
    if rng.random() < 0.5:
        img, mask = img[:, ::-1].copy(), mask[:, ::-1].copy()
    h, w = img.shape
    full = mask.mean() > 0.9
    if rng.random() < (0.35 if full else 0.1):  # a clip cropped inside the sector, shown as a fan
        fan = fan_mask(h, w, rng)
        img[~fan] = 0
        mask &= fan
    if _rect_crop_p and rng.random() < _rect_crop_p:  # a fan cropped to a rectangle inside it, shown as one
        box = inscribed_rectangle(mask, rng)
        if box is not None:
            x0, y0, x1, y1 = box
            img, mask = img[y0:y1, x0:x1].copy(), np.ones((y1 - y0, x1 - x0), bool)
            h, w = img.shape
    if rng.random() < 0.5:  # small crop
        t, b, lft, r = (rng.uniform(0, 0.08, size=4) * [h, h, w, w]).astype(int)
        img, mask = img[t : h - b, lft : w - r], mask[t : h - b, lft : w - r]
    if rng.random() < 0.3:  # a different display resolution (changes the speckle grain size)
        f = rng.uniform(0.6, 1.5)
        size = (max(32, int(img.shape[1] * f)), max(32, int(img.shape[0] * f)))
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, size, interpolation=interp)
        # Same interpolation for the mask, so every pixel that took a value from the sector is in it.
        mask = cv2.resize(mask.astype(np.float32), size, interpolation=interp) > 0
    if rng.random() < 0.3:  # sector placed in a wider / taller black display
        h, w = img.shape
        pt, pb = (rng.uniform(0, 0.12, size=2) * h).astype(int)
        pl, pr = (rng.uniform(0, 0.3, size=2) * w).astype(int)
        img = cv2.copyMakeBorder(img, pt, pb, pl, pr, cv2.BORDER_CONSTANT, value=0)
        mask = cv2.copyMakeBorder(mask.astype(np.uint8), pt, pb, pl, pr, cv2.BORDER_CONSTANT, value=0) > 0
    if mask.sum() < 64:
        mask = np.ones_like(mask)
    return np.ascontiguousarray(img), np.ascontiguousarray(mask)


def make_sample(
    img: np.ndarray, mask: np.ndarray, label: str, rng: Rng, augment: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """One frame of class ``label`` from a clean frame and its sector mask, and the sample's mask.

    With ``augment`` the frame first gets another geometry and scanner look (every class), then
    the class's degradation; without it only the degradation (``diagnostic``: mild jitter).
    """
    if augment:
        img, mask = augment_geometry(img, mask, rng)
        img = scanner_look(img, mask, rng)
    geo = sector_geometry(mask)
    if augment and rng.random() < RIB_LOOK_P:
        img = rib_shadows(img, geo, rng)
    if augment and rng.random() < _depth_look_p:
        img = beyond_penetration(img, geo, rng)
    out = DEGRADATIONS[label](img, geo, rng)
    if label in ("no_contact", "shadow") and rng.random() < 0.5:  # vary noise / blur there too
        out = mild(out, geo, rng)
    return out, mask
