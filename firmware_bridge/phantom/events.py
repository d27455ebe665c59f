"""Operator events, applied physically to the scene or the receive chain.

- ``no_contact``: probe lifted; the scene is replaced by transducer ring-down (no tissue).
- ``rib_shadow``: a rib (bright curved surface, bone attenuation) over a lateral range of beams.
- ``partial_contact``: an air gap under part of the face: those beams get ring-down and no tissue.
- ``gain_up`` / ``gain_down``: receive gain offset in dB, before log compression.
- ``motion_blur``: the frame is the mean intensity of several sub-frames during fast probe motion.
- ``freeze``: the previous frame is repeated (handled by the frame generator).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware_bridge.phantom.geometry import ScanConverter
from firmware_bridge.phantom.scene import BONE_ALPHA, Scene, band

EVENTS = ("no_contact", "rib_shadow", "partial_contact", "gain_up", "gain_down", "motion_blur", "freeze")
GAIN_UP_DB = 22.0
GAIN_DOWN_DB = -24.0


def check_events(events: tuple[str, ...] | list[str]) -> None:
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise ValueError(f"unknown event(s) {unknown}; known: {', '.join(EVENTS)}")


def gain_db(events: tuple[str, ...] | list[str], params: dict[str, Any]) -> float:
    """The gain offset in dB the events ask for (``gain_db`` in params overrides the default)."""
    if "gain_up" in events:
        return float(params.get("gain_db", GAIN_UP_DB))
    if "gain_down" in events:
        return float(params.get("gain_db", GAIN_DOWN_DB))
    return float(params.get("gain_db", 0.0))


def shadow_range(params: dict[str, Any], rng: np.random.Generator) -> tuple[float, float]:
    """Lateral range (fractions of the sector width) in shadow: from params or drawn at one side."""
    if "shadow_from" in params and "shadow_to" in params:
        return float(params["shadow_from"]), float(params["shadow_to"])
    width = rng.uniform(0.5, 0.7)
    return (0.0, width) if rng.random() < 0.5 else (1.0 - width, 1.0)


def apply_shadow(
    scene: Scene, sc: ScanConverter, rng: np.random.Generator, params: dict[str, Any], kind: str
) -> None:
    """Attenuate the beams of a lateral range to near zero from a depth downward (acoustic shadow)."""
    u0, u1 = shadow_range(params, rng)
    cols = (sc.u >= u0) & (sc.u <= u1)
    y = sc.y_mm
    if kind == "rib_shadow":
        mid, half = (u0 + u1) / 2, max((u1 - u0) / 2, 1e-3)
        top = float(params.get("shadow_depth_mm", rng.uniform(4, 9))) + 2.5 * ((sc.u - mid) / half) ** 2
        scene.specular[cols & band(y, top, 1.0)] = 7.0  # rib surface
        shadow = cols & (y > top + 0.6)
        scene.alpha[shadow] = BONE_ALPHA
        scene.specular[shadow] = 0.0  # nothing behind the rib is insonified...
        scene.comet[shadow] = 0.0  # ...and no artefact starts there either
    else:
        # Air between face and skin: total reflection at the face, ring-down bands, no tissue.
        period = rng.uniform(3.5, 6.0)
        shadow = cols
        scene.echo[cols], scene.comet[cols] = 0.0, 0.0
        scene.specular[cols] = 0.0
        for k in range(8):
            scene.specular[cols & band(y, 0.6 + k * period, 0.9)] = 8.0 * np.exp(-0.5 * k)
    scene.shadow = shadow if scene.shadow is None else scene.shadow | shadow
    for label, masks in list(scene.regions.items()):  # findings under the shadow are no longer visible
        kept = [m & ~shadow for m in masks]
        scene.regions[label] = [m for m in kept if np.count_nonzero(m) >= 20]
