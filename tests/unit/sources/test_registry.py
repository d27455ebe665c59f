"""The URL registry with the built-in schemes: building (no I/O), errors, and user schemes."""

from __future__ import annotations

from pathlib import Path

import pytest

import edge.sources
from edge.errors import SourceError, UnsupportedSourceError
from edge.sources import (
    Source,
    SourceInfo,
    SourceURL,
    builtin,
    open_source,
    register_scheme,
    registered_schemes,
    registry,
)
from edge.sources.dicom import DicomSource
from edge.sources.uvc import UvcSource
from edge.sources.video import VideoSource


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the registry, so schemes registered by a test vanish after it."""
    registered_schemes()  # make sure the built-ins are in before copying
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_package_exports() -> None:
    for name in ("open_source", "register_scheme", "Source", "SourceInfo"):
        assert name in edge.sources.__all__
        assert hasattr(edge.sources, name)


def test_builtin_schemes_are_registered() -> None:
    assert {"video", "dicom", "uvc"} <= set(registered_schemes())


@pytest.mark.parametrize(
    ("url", "cls"),
    [
        ("video:///no/such/clip.mp4", VideoSource),
        ("VIDEO:///no/such/clip.mp4?loop=1&realtime=0", VideoSource),
        ("dicom:///no/such/folder", DicomSource),
        ("uvc://0", UvcSource),
        ("uvc:///dev/video7?width=640&height=480&fps=30", UvcSource),
    ],
)
def test_open_source_only_constructs(url: str, cls: type) -> None:
    """Building a source does no I/O: missing files and devices fail at open(), not here."""
    src = open_source(url)
    assert isinstance(src, cls)
    assert isinstance(src, Source)
    assert isinstance(src.info, SourceInfo)
    assert src.info.url == url
    assert src.eof is False


def test_missing_file_fails_at_open_naming_it() -> None:
    src = open_source("video:///no/such/clip.mp4")
    with pytest.raises(SourceError, match=r"clip\.mp4"):
        src.open()


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UnsupportedSourceError, match=r"unknown source scheme 'rtsp'.*dicom.*uvc.*video"):
        open_source("rtsp://camera/stream")


def test_url_without_scheme_is_rejected() -> None:
    with pytest.raises(UnsupportedSourceError, match="not a source URL"):
        open_source("/clips/a.mp4")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("video:///a.mp4?relatime=0", "unknown query parameter.*relatime"),
        ("video:///a.mp4?realtime=maybe", "realtime='maybe' must be 0 or 1"),
        ("video:///a.mp4?fps=0", "fps='0' must be a number > 0"),
        ("video:///a.mp4?fps=fast", "fps='fast' is not a number"),
        ("video:///a.mp4?modality=CT", "modality='CT'"),
        ("video://", "no file path"),
        ("dicom:///a.dcm?loop=2", "loop='2' must be 0 or 1"),
        ("dicom:///a.dcm?modality=DX", "unknown query parameter.*modality"),
        ("uvc://camera", "expected uvc://INDEX"),
        ("uvc://0?backend=magic", "backend='magic'"),
        ("uvc://0?fourcc=MJPEG", "four characters"),
    ],
)
def test_bad_urls_fail_when_built(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(url)


def test_user_scheme(isolated_registry: None) -> None:
    seen: list[SourceURL] = []

    def factory(url: SourceURL) -> Source:
        seen.append(url)
        return VideoSource(url)

    register_scheme("myprobe", factory)
    src = open_source("myprobe://host/clip.mp4?loop=1")
    assert isinstance(src, VideoSource)
    assert seen[0].netloc == "host" and seen[0].path == "/clip.mp4" and seen[0].query == {"loop": "1"}
    with pytest.raises(ValueError, match="already registered"):
        register_scheme("myprobe", factory)


def test_register_all_is_idempotent_and_keeps_user_overrides(isolated_registry: None) -> None:
    def mine(url: SourceURL) -> Source:
        return UvcSource(url)

    register_scheme("video", mine, replace=True)
    builtin.register_all()  # must neither raise nor replace the user's factory
    assert isinstance(open_source("video://0"), UvcSource)


def test_context_manager_opens_and_closes(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    path = tmp_path / "one.png"
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    with open_source(f"video://{path}") as src:
        frame = src.read(1.0)
        assert frame is not None and frame.image.shape == (8, 8, 3)
    with pytest.raises(SourceError, match="not open"):
        src.read(0)
    src.close()  # idempotent
