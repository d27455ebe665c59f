"""The model's input: the frame's imaging sector resampled to scan lines, normalised.

The runtime's own ``Preprocessor.fit`` with the manifest's ``input.view = "scanlines"`` makes every
image, so a model trains on exactly the pixels it will see; only the sector is found here once per
clip (or phantom scene) from a few of its frames, as the runtime's tracker finds it once and keeps
it. Boxes in frame pixels map into the input with ``boxes_to_input``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.inference.manifest import InputSpec
from edge.inference.preprocess import Preprocessor
from edge.inference.sector import ScanlineMap, Sector, SectorNotFound, find_sector
from tools.modelkit.pocus import to_gray

LINE_HALF_W = 2.0  # input pixels either side of a B-line's column (128 columns over the sector)
SECTOR_FRAMES = 8  # frames of a clip the sector is found from (motion separates image from layout)


class ScanInput:
    def __init__(self, frames: Sequence[np.ndarray], spec: InputSpec) -> None:
        step = max(1, len(frames) // SECTOR_FRAMES)
        grays = [to_gray(f) for f in frames[::step]]
        try:
            self.sector: Sector = find_sector(grays)
        except SectorNotFound:  # probe in the air: the whole frame, as the runtime does
            h, w = grays[0].shape
            self.sector = Sector.whole(w, h)
        self.pre = Preprocessor(spec)
        h, w = spec.hw
        self.map = ScanlineMap(self.sector, (w, h))  # the same maps as the Preprocessor's, for boxes

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.pre.fit(frame, self.sector)[0].copy()

    def boxes_to_input(self, boxes: np.ndarray, thin: np.ndarray | None = None) -> np.ndarray:
        """xyxy frame-pixel boxes -> xyxy input boxes.

        A box flagged ``thin`` holds one straight line from its top to its bottom edge (a B-line:
        slanted on a convex probe, so its bounding box is wide): it becomes a vertical box
        ``LINE_HALF_W`` either side of the column of its centre. Any other box becomes the extent
        of its mapped outline.
        """
        if len(boxes) == 0:
            return np.zeros((0, 4), np.float32)
        flags = np.zeros(len(boxes), bool) if thin is None else np.asarray(thin, bool)
        out = []
        for (x0, y0, x1, y1), is_thin in zip(np.asarray(boxes, np.float64), flags):
            t = np.linspace(0.0, 1.0, 9)
            outline = np.concatenate(
                [
                    np.stack([x0 + t * (x1 - x0), np.full_like(t, y0)], 1),
                    np.stack([x0 + t * (x1 - x0), np.full_like(t, y1)], 1),
                    np.stack([np.full_like(t, x0), y0 + t * (y1 - y0)], 1),
                    np.stack([np.full_like(t, x1), y0 + t * (y1 - y0)], 1),
                ]
            )
            q = self.map.from_frame(outline)
            rows = (q[:, 1].min(), q[:, 1].max())
            if is_thin:
                c = float(self.map.from_frame(np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]))[0, 0])
                out.append([c - LINE_HALF_W, rows[0], c + LINE_HALF_W, rows[1]])
            else:
                out.append([q[:, 0].min(), rows[0], q[:, 0].max(), rows[1]])
        size = float(self.map.size[0])
        return np.clip(np.asarray(out, np.float32), 0.0, size)
