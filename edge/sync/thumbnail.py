"""The optional result thumbnail: a small JPEG of the frame with its overlay, de-identified first.

Ultrasound frames often carry the patient's name, birth date or the clinic burned into the pixels
around the scan. So for an ultrasound frame everything outside its ultrasound regions (from the
DICOM Sequence of Ultrasound Regions, in ``frame.geometry.regions``) is blacked out with
``edge.deid.pixels.blackout_outside`` before the overlay is drawn and the JPEG encoded; a frame
whose regions are unknown gets no thumbnail, and neither does one the masking refuses: fail closed.

An X-ray (CR, DX) gets one only when its file says Burned In Annotation "NO": with "YES", or with
the attribute absent, the film may carry the patient's name in its pixels and no clean region is
known to mask to, so it gets none (fail closed, as for ultrasound).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from edge.deid.pixels import blackout_outside
from edge.errors import EdgeError
from edge.frames import Frame
from edge.render.overlay import compose
from edge.results import Result
from edge.sync.jpeg import jpeg_size

__all__ = ["ThumbnailUnavailable", "jpeg_size", "load_blackout", "make_thumbnail", "scan_rects"]

Rect = tuple[int, int, int, int]
Blackout = Callable[[np.ndarray, Sequence[Rect]], np.ndarray]


class ThumbnailUnavailable(EdgeError):
    """No thumbnail can be made for this frame without risking identity; the reason says why."""


def load_blackout() -> Blackout:
    """The runtime's masking function (shared with DICOM de-identification, so both mask alike)."""
    return blackout_outside


def scan_rects(frame: Frame) -> list[Rect]:
    """The frame's ultrasound regions as (x0, y0, x1, y1) pixel rectangles."""
    return [(r.x0, r.y0, r.x1, r.y1) for r in frame.geometry.regions]


def make_thumbnail(
    frame: Frame,
    result: Result | None,
    *,
    long_side: int = 256,
    quality: int = 80,
    blackout: Blackout | None = blackout_outside,
    counted: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A JPEG of ``frame`` (masked when ultrasound) with ``result``'s overlay, at most ``long_side``
    pixels on its longer side; ``counted`` (the chain's counted labels) draws the per-frame counts
    and the clip score as the screen does. Raises ThumbnailUnavailable when it cannot be made safely."""
    image = frame.image
    if image.dtype != np.uint8:
        raise ThumbnailUnavailable(f"frame {frame.seq}: image is {image.dtype}, not uint8")
    if frame.modality == "US":
        if blackout is None:
            raise ThumbnailUnavailable("no masking function: no ultrasound thumbnails")
        rects = scan_rects(frame)
        if not rects:
            raise ThumbnailUnavailable(
                f"frame {frame.seq} of {frame.source_id}: ultrasound region unknown, cannot mask"
            )
        try:
            image = blackout(image, rects)
        except Exception as exc:  # the masking refused these rectangles: no thumbnail
            raise ThumbnailUnavailable(f"frame {frame.seq}: masking failed: {exc}") from exc
    elif frame.modality in ("CR", "DX"):
        burned = str(frame.meta.get("BurnedInAnnotation") or "").strip().upper()
        if burned != "NO":
            said = f'"{burned}"' if burned else "absent"
            raise ThumbnailUnavailable(
                f"frame {frame.seq} of {frame.source_id}: X-ray with Burned In Annotation {said} "
                "and no known clean region"
            )
    drawn = compose(image, result, None, counted=counted)
    h, w = drawn.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        drawn = cv2.resize(drawn, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ThumbnailUnavailable(f"frame {frame.seq}: JPEG encoding failed")
    return buf.tobytes()
