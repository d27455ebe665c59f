"""Checked DICOM images waiting to be shown, turned into Frames: what the Storage SCP and the folder
watch hand to the runtime.

A still (one frame: a CR or DX exposure, a single ultrasound image) is one Frame, stamped with the
moment it arrived (for the SCP: as it answered success), so ``capture_to_result`` and
``result_on_screen`` in the run report count from there. A multi-frame object (an ultrasound cine)
is played at its frame rate (FrameTime, CineRate, else 30 fps), frame 0 at its arrival. Between
images ``read()`` returns None at its timeout: a still source waits for the next exposure.

The first frame, decoded when the image was checked, is kept for the next few images only; an
image further back in the queue is decoded again when its turn comes, so a burst of large images
does not pile up in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator

import numpy as np
from pydicom.pixels import iter_pixels

from edge.frames import Frame
from edge.sources._common import period_ns
from edge.sources.dicom_file import DicomImage
from edge.sources.dicom_store import Arrival

log = logging.getLogger(__name__)

KEEP_DECODED = 4  # queued images whose first frame stays decoded
DEFAULT_CINE_FPS = 30.0  # a cine whose file gives no rate (as dicom:// plays it)


def _decode_frames(image: DicomImage, start: int) -> Iterator[np.ndarray]:
    """Frames ``start``.. of ``image``, one decoder call each (pydicom 3.0 mis-steps over several
    frames of native YBR_FULL_422 in one call; a single index decodes right, see dicom.py)."""
    for index in range(start, image.n_frames):
        (arr,) = iter_pixels(image.decode_from, indices=[index], **image.decode_kwargs)
        yield arr


def _close(frames: Iterator[np.ndarray]) -> None:
    close = getattr(frames, "close", None)  # a generator: closing it closes its file
    if close is not None:
        close()


class Inbox:
    """A queue of arrivals read as frames, one ``seq`` across them; safe to put from any thread."""

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        self._queue: deque[Arrival] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._seq = 0
        self._playing: Arrival | None = None
        self._frames: Iterator[np.ndarray] | None = None
        self._index = 0
        self._due_ns = 0
        self.shown = 0  # images whose first frame was handed over

    def put(self, arrival: Arrival) -> None:
        with self._cond:
            if sum(a.first is not None for a in self._queue) >= KEEP_DECODED:
                arrival.first = None
            self._queue.append(arrival)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + (self._playing is not None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._end_playing()

    def read(self, timeout: float | None) -> Frame | None:
        """The next frame: the next of a cine being played when due, else the next image; None when
        nothing is due within ``timeout`` or the inbox was closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._playing is not None:
            return self._next_cine_frame(deadline)
        with self._cond:
            while not self._queue and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            if self._closed:
                return None
            arrival = self._queue.popleft()
        return self._start(arrival)

    # -- one image ------------------------------------------------------------------------------------
    def _start(self, arrival: Arrival) -> Frame | None:
        image = arrival.image
        try:
            frames = _decode_frames(image, 0) if arrival.first is None else _decode_frames(image, 1)
            bgr, raw = arrival.first if arrival.first is not None else image.render(next(frames))
        except Exception as exc:  # the file changed or vanished since it was checked: skip it
            log.warning("%s: cannot be shown (%s: %s); skipping it", image.path, type(exc).__name__, exc)
            return None
        arrival.first = None
        self.shown += 1
        frame = self._frame(arrival, 0, bgr, raw, arrival.t_arrived_ns, arrival.wall_time)
        if image.n_frames > 1:
            self._playing, self._frames, self._index = arrival, frames, 0
            self._due_ns = time.monotonic_ns()
        else:
            _close(frames)
        return frame

    def _next_cine_frame(self, deadline: float | None) -> Frame | None:
        arrival, frames = self._playing, self._frames
        assert arrival is not None and frames is not None
        image = arrival.image
        due = self._due_ns + period_ns(image.fps or DEFAULT_CINE_FPS)
        wait_s = (due - time.monotonic_ns()) / 1e9
        if wait_s > 0:
            if deadline is not None and time.monotonic() + wait_s > deadline:
                time.sleep(max(0.0, deadline - time.monotonic()))
                return None
            time.sleep(wait_s)
        try:
            arr = next(frames, None)
            rendered = None if arr is None else image.render(arr)
        except Exception as exc:
            log.warning(
                "%s: frame %d cannot be decoded (%s); skipping the rest", image.path, self._index + 1, exc
            )
            rendered = None
        if rendered is None:
            self._end_playing()
            return None
        self._index += 1
        self._due_ns = due
        wall = time.time() - (time.monotonic_ns() - due) / 1e9
        return self._frame(arrival, self._index, rendered[0], rendered[1], due, wall)

    def _end_playing(self) -> None:
        if self._frames is not None:
            _close(self._frames)  # closes the file the decoder holds open
        self._playing, self._frames = None, None

    def _frame(
        self, arrival: Arrival, index: int, bgr: np.ndarray, raw: np.ndarray | None, t_ns: int, wall: float
    ) -> Frame:
        image = arrival.image
        frame = Frame(
            image=bgr,
            seq=self._seq,
            t_acquired_ns=t_ns,
            t_received_ns=time.monotonic_ns(),
            source_id=self.source_id,
            modality=image.modality,
            wall_time=wall,
            geometry=image.geometry,
            raw=raw,
            meta={
                **image.meta,
                "frame_index": index,
                "still": image.n_frames == 1,
                "content_id": f"{arrival.uid}#{index}",
            },
        )
        self._seq += 1
        return frame
