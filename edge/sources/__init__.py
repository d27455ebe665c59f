"""Frame sources opened by URL: ``open_source("video:///clips/lung.mp4?loop=1")``.

Built-in schemes: ``video://`` (clips and stills through OpenCV), ``dicom://`` (a file or a folder,
through pydicom) and ``uvc://`` (a USB video-class device). Add one with ``register_scheme``.
"""

from edge.sources.base import Source, SourceInfo
from edge.sources.registry import SourceURL, open_source, register_scheme, registered_schemes

__all__ = ["Source", "SourceInfo", "SourceURL", "open_source", "register_scheme", "registered_schemes"]
