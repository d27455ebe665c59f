"""What every display sink is: the protocol the pipeline drives, and the error sinks raise."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from edge.errors import EdgeError


class DisplayError(EdgeError):
    """A display sink could not open or write (no display, codec missing, disk full). Raised from
    the OSError underneath when there is one, so its errno (ENOSPC, EFBIG) still tells a full disk."""


@runtime_checkable
class Sink(Protocol):
    """Anything that takes composed frames. Tests inject any object with these members.

    A sink may also say ``expendable = True`` (a recording, snapshots): on a full disk the runtime
    closes it and goes on, rather than count its failures against the run.
    """

    name: str

    def open(self, width: int, height: int, fps: float | None) -> None: ...

    def show(self, image: np.ndarray, frame_seq: int) -> None: ...

    def wants_stop(self) -> bool: ...

    def close(self) -> None: ...


def to_bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
