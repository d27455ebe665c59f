"""Frames from a folder of images, a clip, a DICOM file/folder or any runtime source URL.

Everything goes through what the runtime reads (``edge.sources``) except a folder of stills,
read with OpenCV as BGR like the ``video://`` source reads one still, so calibration and
comparison frames look exactly like live frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.config import DEFAULT_CLIP
from edge.errors import SourceError
from edge.sources import open_source

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
DICOM_EXTENSIONS = frozenset({".dcm", ".dicom", ""})
DEFAULT_SOURCE = DEFAULT_CLIP


def source_url(source: str | Path) -> str | None:
    """The runtime source URL for ``source``, or None when it is a folder of stills."""
    text = str(source)
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file()]
        if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in files):
            return None
        return f"dicom://{path}"
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return None
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return f"dicom://{path}"
    return f"video://{path}?realtime=0"


def iter_frames(source: str | Path = DEFAULT_SOURCE, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Up to ``max_frames`` images (HxW or HxWx3 BGR uint8) from ``source``, in order."""
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, not {max_frames}")
    url = source_url(source)
    frames = _stills(Path(source).expanduser().resolve()) if url is None else _from_url(url)
    for n, image in enumerate(frames):
        if max_frames is not None and n >= max_frames:
            return
        yield image


def read_frames(source: str | Path = DEFAULT_SOURCE, max_frames: int | None = None) -> list[np.ndarray]:
    frames = list(iter_frames(source, max_frames))
    if not frames:
        raise SourceError(f"{source}: no frames could be read")
    return frames


def _stills(path: Path) -> Iterator[np.ndarray]:
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    )
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{file}: not a readable image")
        yield image


def _from_url(url: str) -> Iterator[np.ndarray]:
    src = open_source(url)
    src.open()
    try:
        while True:
            frame = src.read(timeout=5.0)
            if frame is None:
                if src.eof:
                    return
                raise SourceError(f"{url}: no frame within 5 s")
            yield frame.image
    finally:
        src.close()
