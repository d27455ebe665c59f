"""Frame image -> model input tensor, into buffers allocated once per model.

The per-frame path does colour conversion, one resize and one fused multiply-add in place;
nothing here allocates after construction except what OpenCV needs internally.
``tools/us_quality/preprocess.py`` mirrors the "stretch" path exactly; a test checks they agree.

The manifest's ``input.view`` picks what of the frame the model sees. "frame": all of it.
"sector": the imaging area (``edge.inference.sector``) cropped, 0 outside it, brightness
normalised, then resized as usual. "scanlines": a convex fan resampled to scan-line coordinates
(a linear area cropped), normalised. The area is found on the first frame, again when the frame
size changes, and every ``SectorTracker.every`` frames (300, 10 s at 30 fps) from that frame and
up to three kept since; until one is found (a first frame without contact), the whole frame is
used and the search is retried every ``retry`` frames.

The search (``find_sector``) takes 8-11 ms on a 2-core box. Live, the runtime turns on background
refits (:func:`refit_in_background`): only a stream's very first search (nothing to show without
it) runs on the frame's own path; the periodic refits, the retries and the search after a view
reset run on a worker thread ("sector-refit") while frames go on with the area found before, and
the new one is taken at the next frame after it is ready. Off by default, so the training tools,
which build inputs through ``Preprocessor.fit``, get the same inputs on every run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from edge.inference.manifest import InputSpec
from edge.inference.resize import area_resize
from edge.inference.sector import ScanlineMap, Sector, SectorNotFound, find_sector, gain_for

__all__ = [
    "LETTERBOX_PAD", "Preprocessor", "SectorTracker", "Transform", "area_resize", "one_frame",
    "refit_in_background",
]  # fmt: skip
PointMap = Callable[[np.ndarray], np.ndarray]

LETTERBOX_PAD = 114  # Ultralytics' pad value, so exported YOLO models see what they trained on

_background = False
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@contextmanager
def refit_in_background() -> Iterator[None]:
    """Trackers made inside the block (the models loaded in it) search for the imaging area off
    the frame's path (see the module docstring). The live runtime loads its models so."""
    global _background
    before, _background = _background, True
    try:
        yield
    finally:
        _background = before


_frame = threading.local()  # the image of one_frame, its gray and its scan-line views, per thread


@contextmanager
def one_frame(image: np.ndarray) -> Iterator[None]:
    """Inside the block, every Preprocessor of this thread that wants ``image`` (this very array) in
    gray converts it once and shares the result (the model chain runs its models on one frame so:
    a colour frame was converted once per gray model). The gray is read-only to them. So are its
    scan-line views: models that unroll the same fan to the same size share one remap."""
    _frame.image, _frame.gray, _frame.scanlines = image, None, {}
    try:
        yield
    finally:
        _frame.image = _frame.gray = _frame.scanlines = None


def _refits() -> ThreadPoolExecutor:
    """One worker for every tracker: searches are rare (every 10 s) and must not compete."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix="sector-refit")
        return _pool


@dataclass(frozen=True, slots=True)
class Transform:
    """Maps model-input pixel coordinates back to frame pixels: x_frame = (x_in - pad_x) / scale.

    A non-linear input (the "scanlines" view) carries point maps instead (input (x, y) -> frame
    (x, y) and back); a box then maps to the bounding box of its mapped outline.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    frame_points: PointMap | None = None
    input_points: PointMap | None = None

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        if self.frame_points is not None:
            return _map_boxes(boxes, self.frame_points)
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y
        return out

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_frame`: frame-pixel xyxy boxes into model-input pixels
        (training tools label their inputs with it)."""
        if self.input_points is not None:
            return _map_boxes(boxes, self.input_points)
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale_x + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale_y + self.pad_y
        return out


_OUTLINE = np.linspace(0.0, 1.0, 5)  # points along each side of a box mapped through a point map
# The outline's points as shares of a box's width and height: top, right, bottom, left side.
_OUTLINE_X = np.concatenate([_OUTLINE, np.ones_like(_OUTLINE), _OUTLINE, np.zeros_like(_OUTLINE)])
_OUTLINE_Y = np.concatenate([np.zeros_like(_OUTLINE), _OUTLINE, np.ones_like(_OUTLINE), _OUTLINE])


def _map_boxes(boxes: np.ndarray, points: PointMap) -> np.ndarray:
    """xyxy boxes -> the bounding boxes of their outlines (5 points a side) mapped by ``points``."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros((0, 4), np.float32)
    xs = b[:, None, 0] + _OUTLINE_X[None] * (b[:, None, 2] - b[:, None, 0])
    ys = b[:, None, 1] + _OUTLINE_Y[None] * (b[:, None, 3] - b[:, None, 1])
    mapped = points(np.stack([xs.ravel(), ys.ravel()], axis=1)).reshape(len(b), -1, 2)
    return np.concatenate([mapped.min(axis=1), mapped.max(axis=1)], axis=1).astype(np.float32)


def _scanlines(view: ScanlineMap, gray: np.ndarray) -> np.ndarray:
    """``view(gray)``, shared within :func:`one_frame` by every model with the same fan and size."""
    shared = getattr(_frame, "scanlines", None)
    if shared is None or (gray is not _frame.image and gray is not _frame.gray):
        return view(gray)
    out = shared.get(view.key)
    if out is None:
        out = shared[view.key] = view(gray)
    return out


class SectorTracker:
    """The imaging area of a stream: found on the first frame, again on a size change and every
    ``every`` frames (from the current frame and up to three kept since), retried every ``retry``
    frames while none is found (the whole frame stands in). A new area that differs from the old
    by little (box IoU >= 0.97) is not taken, so the model's input does not jitter."""

    def __init__(
        self,
        every: int = 300,
        retry: int = 30,
        *,
        background: bool | None = None,
        prepare: Callable[[Sector], object] | None = None,
    ) -> None:
        """``background``: refits on the worker thread (None: as :func:`refit_in_background` says).
        ``prepare``: what a user of the area builds from it (a model's scan-line map), built on
        the worker too after a background search (``prepared``), so taking a new area costs the
        frame's path nothing: building a scan-line map took 6 ms on the frame after a new view."""
        self.every, self.retry = every, retry
        self.background = _background if background is None else background
        self.prepare = prepare
        self.prepared: tuple[Sector, object] | None = None
        self._pending: Future[Sector] | None = None
        self._stand_in: Sector | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the area (a new clip or stream). In the background, the old area of the same
        size stands in until the new search is done (a view change: the next frames wait for nothing)."""
        if self.background and getattr(self, "sector", None) is not None:
            self._stand_in = self.sector
        self.sector: Sector | None = None
        self.found = False
        self._count = 0
        self._next = 0
        self._kept: list[np.ndarray] = []
        self._pending = None  # a search started before the reset is not taken

    def update(self, image: np.ndarray) -> Sector:
        h, w = image.shape[:2]
        if self.sector is None or (self.sector.width, self.sector.height) != (w, h):
            stand_in = self._stand_in if self.sector is None else None
            self.reset()
            if stand_in is not None and (stand_in.width, stand_in.height) == (w, h):
                self.sector = stand_in  # searched for in the background from this frame on
        self._stand_in = None
        self._count += 1
        if self._pending is not None and self._pending.done():
            self._take(self._pending)
        if self._count >= self._next and self._pending is None:
            frames = [*self._kept, image]
            if self.background and self.sector is not None:
                self._next = self._count + self.retry  # at most one search at a time
                self._pending = _refits().submit(self._search, [f.copy() for f in frames])
            else:  # nothing to show without it: the stream's first search waits
                self._detected(frames, lambda: find_sector(frames))
        elif self.found and self._count % max(1, self.every // 4) == 0:
            self._kept = [*self._kept[-2:], image.copy()]
        assert self.sector is not None
        return self.sector

    def _search(self, frames: Sequence[np.ndarray]) -> Sector:
        """On the worker: the search, then what ``prepare`` builds from its area."""
        found = find_sector(frames)
        if self.prepare is not None:
            self.prepared = (found, self.prepare(found))
        return found

    @property
    def refitting(self) -> bool:
        """A background search is running (its area is taken at the first frame after it ends)."""
        return self._pending is not None and not self._pending.done()

    def _take(self, done: Future[Sector]) -> None:
        self._pending = None
        self._detected(None, done.result)

    def _detected(self, frames: Sequence[np.ndarray] | None, search: Callable[[], Sector]) -> None:
        try:
            new = search()
        except SectorNotFound:
            if self.sector is None:
                first = frames[-1] if frames else None
                h, w = first.shape[:2] if first is not None else (0, 0)
                self.sector = Sector.whole(w, h)
            self._next = self._count + self.retry
            return
        self._kept = []
        self._next = self._count + self.every
        if not (self.found and self.sector is not None and _box_iou(self.sector.box, new.box) >= 0.97):
            self.sector = new
        self.found = True


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Preprocessor:
    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self.h, self.w = spec.hw
        c = spec.channels
        self._resized = np.empty((self.h, self.w, c) if c == 3 else (self.h, self.w), np.uint8)
        if spec.resize == "letterbox":
            self._resized.fill(LETTERBOX_PAD)
        n = spec.normalize
        std = np.asarray(n.std, np.float32)
        mean = np.asarray(n.mean, np.float32)
        # (x*scale - mean)/std == x*a + b, one fused pass instead of three
        self._a = (n.scale / std).astype(np.float32)
        self._b = (-mean / std).astype(np.float32)
        shape = (1, c, self.h, self.w) if spec.layout == "NCHW" else (1, self.h, self.w, c)
        self._tensor = np.empty(shape, np.float32)
        self._gray: np.ndarray | None = None
        self.tracker = SectorTracker(prepare=self._view_of)
        self._views: tuple[Sector, np.ndarray | ScanlineMap] | None = None  # per sector, built once

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """The input tensor (a view of an internal buffer: use it before the next call)."""
        _, transform = self.fit(image)
        self._normalize()
        if self.spec.dtype == "float32":
            return self._tensor, transform
        return self._tensor.astype(self.spec.dtype), transform

    @property
    def fitted(self) -> np.ndarray:
        """The last frame as fitted to the model: uint8, before normalising (an internal buffer,
        valid until the next call). A task's classical stage reads the model's own view of it."""
        return self._resized

    def reset(self) -> None:
        """Forget the imaging area found so far: call between clips when building inputs."""
        self.tracker.reset()
        self._views = None

    def fit(self, image: np.ndarray, sector: Sector | None = None) -> tuple[np.ndarray, Transform]:
        """The frame in the model's colour and size as uint8, before normalizing (an internal
        buffer: copy it to keep it). Training tools build their inputs through this, so a model
        sees exactly the pixels the runtime will give it. For the "sector" and "scanlines" views
        the imaging area is tracked over calls (see the module's docstring: ``reset()`` between
        clips), or taken from ``sector`` where given."""
        src = self._color(image)
        if self.spec.view != "frame":
            return self._fit_view(src, sector or self.tracker.update(image))
        ih, iw = src.shape[:2]
        if self.spec.resize == "stretch":
            area_resize(src, (self.w, self.h), dst=self._resized)
            return self._resized, Transform(self.w / iw, self.h / ih, 0.0, 0.0)
        return self._resized, self._letterbox(src)

    def _view_of(self, sector: Sector) -> np.ndarray | ScanlineMap:
        """What this model's view needs of an area: its scan-line map, or the mask's crop."""
        if self.spec.view == "scanlines":
            return ScanlineMap(sector, (self.w, self.h))
        x0, y0, x1, y1 = sector.box
        return np.ascontiguousarray(sector.mask[y0:y1, x0:x1])

    def _fit_view(self, gray: np.ndarray, sector: Sector) -> tuple[np.ndarray, Transform]:
        if gray.shape != sector.mask.shape:
            raise ValueError(
                f"input.view {self.spec.view!r}: frame {gray.shape[::-1]} is not the size the imaging "
                f"area was found on ({sector.width}x{sector.height})"
            )
        if self._views is None or self._views[0] is not sector:
            ready = self.tracker.prepared  # built on the refit worker, where the area was found
            view = ready[1] if ready is not None and ready[0] is sector else self._view_of(sector)
            assert isinstance(view, (np.ndarray, ScanlineMap))
            self._views = (sector, view)
        aid = self._views[1]
        if isinstance(aid, ScanlineMap):
            self._resized[...] = _scanlines(aid, gray)
            self._apply_gain(self._resized, None)
            return self._resized, Transform(
                1.0, 1.0, 0.0, 0.0, frame_points=aid.to_frame, input_points=aid.from_frame
            )
        x0, y0, x1, y1 = sector.box
        crop = cv2.bitwise_and(gray[y0:y1, x0:x1], aid)
        if self.spec.resize == "stretch":
            area_resize(crop, (self.w, self.h), dst=self._resized)
            region = self._resized
            t = Transform(self.w / (x1 - x0), self.h / (y1 - y0), 0.0, 0.0)
        else:
            t = self._letterbox(crop)
            nw, nh = round(t.scale_x * (x1 - x0)), round(t.scale_y * (y1 - y0))
            region = self._resized[round(t.pad_y) : round(t.pad_y) + nh, round(t.pad_x) : round(t.pad_x) + nw]
        self._apply_gain(region, region > 0)
        # crop offset folded into the pads: x_in = (x_frame - x0) * scale + pad
        return self._resized, Transform(
            t.scale_x, t.scale_y, t.pad_x - x0 * t.scale_x, t.pad_y - y0 * t.scale_y
        )

    @staticmethod
    def _apply_gain(region: np.ndarray, inside: np.ndarray | None) -> None:
        gain = gain_for(region, None if inside is None else inside.view(np.uint8))
        region[...] = cv2.convertScaleAbs(region, alpha=gain)  # a letterbox region is not contiguous

    def _color(self, image: np.ndarray) -> np.ndarray:
        color = self.spec.color
        if image.ndim == 2:
            return (
                image
                if color == "gray"
                else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if color == "bgr" else cv2.COLOR_GRAY2RGB)
            )
        if color == "gray":
            if getattr(_frame, "image", None) is image:
                gray: np.ndarray | None = _frame.gray
                if gray is None:
                    gray = _frame.gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                return gray
            if self._gray is None or self._gray.shape != image.shape[:2]:
                self._gray = np.empty(image.shape[:2], np.uint8)
            return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY, dst=self._gray)
        return image if color == "bgr" else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _letterbox(self, src: np.ndarray) -> Transform:
        ih, iw = src.shape[:2]
        scale = min(self.w / iw, self.h / ih)
        nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
        px, py = (self.w - nw) // 2, (self.h - nh) // 2
        self._resized.fill(LETTERBOX_PAD)
        region = self._resized[py : py + nh, px : px + nw]
        if scale < 1:
            region[...] = area_resize(src, (nw, nh))
        else:
            region[...] = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return Transform(nw / iw, nh / ih, float(px), float(py))

    def _normalize(self) -> None:
        t = self._tensor
        if self._resized.ndim == 2:
            view = t[0, 0] if self.spec.layout == "NCHW" else t[0, :, :, 0]
            np.multiply(self._resized, self._a[0], out=view, casting="unsafe")
            view += self._b[0]
            return
        if self.spec.layout == "NHWC":
            np.multiply(self._resized, self._a, out=t[0], casting="unsafe")
            t[0] += self._b
            return
        for c in range(3):
            a, b = self._a[min(c, len(self._a) - 1)], self._b[min(c, len(self._b) - 1)]
            np.multiply(self._resized[:, :, c], a, out=t[0, c], casting="unsafe")
            t[0, c] += b
