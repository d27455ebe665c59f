"""dicom://: every kind of bad input (missing, not DICOM, no pixels, truncated, no decoder, unsupported
photometric), and stills looped, unreadable and vanishing inputs: each a clear error or a skip that
names its cause, nothing lost that was already read."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML

import edge.sources.dicom_file as dicom_file_module
from edge.errors import CorruptInputError, SourceError, UnsupportedSourceError
from edge.sources import open_source
from edge.sources._common import DEFAULT_STILL_FPS, period_ns
from tests.support.dicom import frames_of, opened
from tests.support.sources import read_all

Finder = Callable[[str], Path]
Writer = Callable[..., Path]


# -- bad inputs ---------------------------------------------------------------------------------------------
def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nowhere\.dcm: no such file or folder"):
        opened(f"dicom://{tmp_path / 'nowhere.dcm'}")


@pytest.mark.parametrize("content", [b"\x00garbage\xff" * 400, b"hello world\n" * 100])
def test_not_dicom(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(content)
    with pytest.raises(UnsupportedSourceError, match=r"scan\.dcm: not a DICOM file"):
        opened(f"dicom://{path}")


def test_no_pixel_data(dicom_writer: Writer) -> None:
    path = dicom_writer("report.dcm", None, rows=8, cols=8, photometric="MONOCHROME2")
    with pytest.raises(UnsupportedSourceError, match=r"report\.dcm: no Pixel Data element"):
        opened(f"dicom://{path}")


@pytest.mark.parametrize(
    ("name", "fraction"),
    [
        ("US1_UNCR.dcm", 0.5),  # native pixel data cut in half
        ("OBXXXX1A_rle_2frame.dcm", 0.7),  # encapsulated (RLE) pixel data cut mid-fragment
        ("examples_ybr_color.dcm", 0.6),  # encapsulated JPEG cine cut after some frames
        ("US1_UNCR.dcm", 0.0015),  # cut inside the header
        ("MR_truncated.dcm", 1.0),  # pydicom's own truncated test file
    ],
)
def test_truncated_files(dicom_file: Finder, tmp_path: Path, name: str, fraction: float) -> None:
    data = dicom_file(name).read_bytes()
    path = tmp_path / f"cut_{name}"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CorruptInputError, match=re.escape(path.name) + r": truncated") as caught:
        opened(f"dicom://{path}")
    assert "truncated" in str(caught.value)


def test_transfer_syntax_without_decoder(dicom_writer: Writer) -> None:
    path = dicom_writer(
        "video.dcm",
        encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60]),
        rows=8,
        cols=8,
        photometric="YBR_PARTIAL_420",
        samples=3,
        transfer_syntax=MPEG2MPML,
    )
    with pytest.raises(UnsupportedSourceError, match=r"video\.dcm: pydicom has no decoder for .*MPEG2"):
        opened(f"dicom://{path}")


def test_missing_decoder_plugin_is_named(dicom_file: Finder, monkeypatch: pytest.MonkeyPatch) -> None:
    class Unavailable:
        is_available = False
        missing_dependencies = ("pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-openjpeg>=2.0",)

    monkeypatch.setattr(dicom_file_module, "get_decoder", lambda uid: Unavailable())
    with pytest.raises(UnsupportedSourceError, match=r"US1_J2KR\.dcm: .*JPEG 2000.*pylibjpeg-openjpeg"):
        opened(f"dicom://{dicom_file('US1_J2KR.dcm')}")


def test_unsupported_photometric(dicom_writer: Writer) -> None:
    path = dicom_writer("hsv.dcm", bytes(8 * 8 * 3), rows=8, cols=8, samples=3, photometric="HSV")
    with pytest.raises(UnsupportedSourceError, match=r"hsv\.dcm: photometric interpretation 'HSV'"):
        opened(f"dicom://{path}")


def test_close_is_idempotent_and_context_manager(dicom_file: Finder) -> None:
    with open_source(f"dicom://{dicom_file('OBXXXX1A_2frame.dcm')}?realtime=0") as src:
        assert src.read() is not None
    src.close()
    with pytest.raises(SourceError, match="not open"):
        src.read()


# -- stills looped, unreadable and vanishing inputs --------------------------------------------------------
def test_looped_single_frame_is_paced_once_a_second_with_one_content_id(dicom_file: Finder) -> None:
    """``loop=1`` on a still paces it at DEFAULT_STILL_FPS: not an endless flood of the same image."""
    src = opened(f"dicom://{dicom_file('US1_UNCR.dcm')}?loop=1")
    assert src.info.realtime is True
    first = src.read(1.0)
    assert src.read(0.2) is None, "the repeat is not due for a second"
    second = src.read(2.0)
    src.close()
    assert first is not None and second is not None
    assert second.t_acquired_ns - first.t_acquired_ns == period_ns(DEFAULT_STILL_FPS)
    assert first.meta["still"] is True and second.meta["still"] is True
    assert first.meta["content_id"] == second.meta["content_id"]
    assert (first.meta["loop_pass"], second.meta["loop_pass"]) == (0, 1)


def test_a_cine_is_not_a_still(dicom_file: Finder) -> None:
    frames = frames_of(dicom_file("OBXXXX1A_2frame.dcm"))
    assert [f.meta["still"] for f in frames] == [False, False]
    assert len({f.meta["content_id"] for f in frames}) == 2


def test_unreadable_files_name_their_cause(tmp_path: Path) -> None:
    dangling = tmp_path / "gone.dcm"
    dangling.symlink_to(tmp_path / "removed.dcm")
    with pytest.raises(SourceError, match=r"gone\.dcm: dangling symbolic link"):
        opened(f"dicom://{dangling}")
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match=r"pipe\.dcm: not a regular file but a named pipe"):
        opened(f"dicom://{fifo}")  # never opened: that would block
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(CorruptInputError, match=r"empty\.dcm: empty file \(0 bytes\)"):
        opened(f"dicom://{empty}")


def test_folder_skips_an_unreadable_file_naming_why(
    mixed_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (mixed_folder / "e_link.dcm").symlink_to(mixed_folder / "nowhere.dcm")
    with caplog.at_level(logging.WARNING, logger="edge.sources.dicom"):
        src = opened(f"dicom://{mixed_folder}")
    src.close()
    assert src.info.extra["skipped_files"] == 4
    assert re.search(r"e_link\.dcm: dangling symbolic link", caplog.text)


def test_a_folder_that_vanishes_mid_replay_ends_it_saying_so(tmp_path: Path, dicom_file: Finder) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    for name in ("a.dcm", "b.dcm", "c.dcm"):
        (folder / name).write_bytes(dicom_file("US1_UNCR.dcm").read_bytes())
    src = opened(f"dicom://{folder}?realtime=0")
    assert src.read(1.0) is not None
    shutil.rmtree(folder)  # the stick is pulled
    with pytest.raises(SourceError, match=r"stick: vanished during the replay"):
        read_all(src)
    src.close()


def test_a_file_that_vanishes_mid_replay_is_skipped_saying_so(
    tmp_path: Path, dicom_file: Finder, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    for name in ("a.dcm", "b.dcm", "c.dcm"):
        (folder / name).write_bytes(dicom_file("US1_UNCR.dcm").read_bytes())
    src = opened(f"dicom://{folder}?realtime=0")
    (folder / "b.dcm").unlink()
    with caplog.at_level(logging.WARNING, logger="edge.sources.dicom"):
        frames = read_all(src)
    src.close()
    assert [Path(f.meta["file"]).name for f in frames] == ["a.dcm", "c.dcm"]
    assert re.search(r"b\.dcm: no such file; skipping the rest of this file", caplog.text)
    assert "cannot be decoded" not in caplog.text


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_a_read_error_under_the_header_is_not_called_malformed() -> None:
    """Past the readability check (the file may fail later, a disk going bad): pydicom's OSError."""
    with pytest.raises(SourceError, match=r"^/proc/self/mem: cannot read: Input/output error$") as caught:
        dicom_file_module._read_header(Path("/proc/self/mem"))
    assert not isinstance(caught.value, CorruptInputError)
