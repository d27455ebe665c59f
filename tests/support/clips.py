"""Video clips and stills written into a folder, with what they hold, for the source tests: frame i of a
clip is a flat gray of ``frame_level(i)``, so order and count survive lossy coding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLIP_FRAMES = 20
CLIP_FPS = 25.0
CLIP_SIZE = (64, 48)  # width, height


def frame_level(i: int) -> int:
    """The gray level of clip frame i, so tests can check order after lossy coding."""
    return (40 + 9 * i) % 256


def write_clip(
    path: Path,
    n: int = CLIP_FRAMES,
    fps: float = CLIP_FPS,
    size: tuple[int, int] = CLIP_SIZE,
    fourcc: str = "mp4v",
) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), frame_level(i), np.uint8))
    writer.release()
    return path


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def still_image() -> np.ndarray:
    """A BGR test card: blue, green, red and white quadrants."""
    img = np.zeros((40, 60, 3), np.uint8)
    img[:20, :30] = (255, 0, 0)
    img[:20, 30:] = (0, 255, 0)
    img[20:, :30] = (0, 0, 255)
    img[20:, 30:] = (255, 255, 255)
    return img


@dataclass(frozen=True)
class ClipSpec:
    """What the clip fixtures hold, for the tests to compare against."""

    frames: int = CLIP_FRAMES
    fps: float = CLIP_FPS
    width: int = CLIP_SIZE[0]
    height: int = CLIP_SIZE[1]

    @staticmethod
    def level(i: int) -> int:
        return frame_level(i)
