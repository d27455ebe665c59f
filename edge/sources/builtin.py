"""The schemes the runtime ships with: ``video://``, ``dicom://``, ``dicom+scp://`` (a Storage SCP),
``dicom+watch://`` (a folder a console exports to), ``uvc://``, ``serial://``, ``probe+emu://``.

Each factory imports its module on first use, so opening a camera does not import pydicom and
opening a DICOM file does not touch the camera code.
"""

from __future__ import annotations

import contextlib

from edge.sources.base import Source
from edge.sources.registry import SourceURL, register_scheme


def _video(url: SourceURL) -> Source:
    from edge.sources.video import VideoSource

    return VideoSource(url)


def _dicom(url: SourceURL) -> Source:
    from edge.sources.dicom import DicomSource

    return DicomSource(url)


def _dicom_scp(url: SourceURL) -> Source:
    from edge.sources.dicom_scp import DicomScpSource

    return DicomScpSource(url)


def _dicom_watch(url: SourceURL) -> Source:
    from edge.sources.dicom_watch import DicomWatchSource

    return DicomWatchSource(url)


def _uvc(url: SourceURL) -> Source:
    from edge.sources.uvc import UvcSource

    return UvcSource(url)


def _serial(url: SourceURL) -> Source:
    from edge.sources.probe import open_serial

    return open_serial(url)


def _probe_emu(url: SourceURL) -> Source:
    from edge.sources.probe import open_emulated

    return open_emulated(url)


BUILTIN_SCHEMES = {
    "video": _video,
    "dicom": _dicom,
    "dicom+scp": _dicom_scp,
    "dicom+watch": _dicom_watch,
    "uvc": _uvc,
    "serial": _serial,
    "probe+emu": _probe_emu,
}


def register_all() -> None:
    """Register the built-in schemes; a scheme a user registered first keeps the user's factory."""
    for scheme, factory in BUILTIN_SCHEMES.items():
        # already registered: by a user plugin (theirs wins) or by an earlier call
        with contextlib.suppress(ValueError):
            register_scheme(scheme, factory)
