"""Frame image -> model input tensor, into buffers allocated once per model.

The per-frame path does colour conversion, one resize and one fused multiply-add in place;
nothing here allocates after construction except what OpenCV needs internally.
``tools/us_quality/preprocess.py`` mirrors the "stretch" path exactly; a test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.inference.manifest import InputSpec
from edge.inference.resize import area_resize

LETTERBOX_PAD = 114  # Ultralytics' pad value, so exported YOLO models see what they trained on


@dataclass(frozen=True, slots=True)
class Transform:
    """Maps model-input pixel coordinates back to frame pixels: x_frame = (x_in - pad_x) / scale."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y
        return out

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_frame`: frame-pixel xyxy boxes into model-input pixels
        (training tools label their inputs with it)."""
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale_x + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale_y + self.pad_y
        return out


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

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """The input tensor (a view of an internal buffer: use it before the next call)."""
        _, transform = self.fit(image)
        self._normalize()
        if self.spec.dtype == "float32":
            return self._tensor, transform
        return self._tensor.astype(self.spec.dtype), transform

    def fit(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """The frame in the model's colour and size as uint8, before normalizing (an internal
        buffer: copy it to keep it). Training tools build their inputs through this, so a model
        sees exactly the pixels the runtime will give it."""
        src = self._color(image)
        ih, iw = src.shape[:2]
        if self.spec.resize == "stretch":
            area_resize(src, (self.w, self.h), dst=self._resized)
            return self._resized, Transform(self.w / iw, self.h / ih, 0.0, 0.0)
        return self._resized, self._letterbox(src)

    def _color(self, image: np.ndarray) -> np.ndarray:
        color = self.spec.color
        if image.ndim == 2:
            return (
                image
                if color == "gray"
                else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if color == "bgr" else cv2.COLOR_GRAY2RGB)
            )
        if color == "gray":
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
