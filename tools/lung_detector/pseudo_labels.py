"""Boxes for real frames, in scan-line input pixels: the teacher's B-lines under the clip's label.

A real clip says only whether B-lines are seen in it. The consensus B-line detector
(``edge.inference.blines``, the teacher) says where, on each frame. The two together label a frame:

- every frame: the pleural line, a band across the imaging columns at the teacher's pleura row;
- a clip without B-lines: no B-line box, whatever the teacher saw (the label wins);
- a clip with B-lines: one box per discrete line the teacher found, from the pleura to the bottom,
  and a confluent run cut into boxes one B-line wide; a frame of such a clip on which the teacher
  found none is left out (``None``), since a B-line it missed would be taught as background.
"""

from __future__ import annotations

import numpy as np

from edge.inference.blines import DEFAULT, TeacherParams, detect, line_boxes

PLEURA_HALF_H = 2.5


def frame_boxes(
    scan: np.ndarray, clip_b_lines: int, labels: tuple[str, ...], p: TeacherParams = DEFAULT
) -> tuple[np.ndarray, np.ndarray] | None:
    """(boxes xyxy float32 [K, 4], classes int64 [K]) for one scan-line input image, or None when
    the frame should not be trained on (see the module docstring)."""
    found = detect(scan, None, p)
    h, w = scan.shape
    cols = np.flatnonzero((scan > 0).mean(0) > 0.5)
    boxes: list[list[float]] = []
    classes: list[int] = []
    if len(cols):
        pr = float(found.pleura_row)
        boxes.append([float(cols[0]), pr - PLEURA_HALF_H, float(cols[-1] + 1), pr + PLEURA_HALF_H + 1])
        classes.append(labels.index("pleural_line"))
    if clip_b_lines:
        lines = line_boxes(found, h, w, p)
        if not lines:
            return None
        boxes += lines
        classes += [labels.index("b_line")] * len(lines)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)
