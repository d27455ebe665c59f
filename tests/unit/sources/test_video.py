"""video://: clips and stills through OpenCV, pacing, looping and every kind of bad file."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import CorruptInputError, SourceError, UnsupportedSourceError
from edge.frames import Frame
from edge.sources import open_source
from edge.sources._common import DEFAULT_STILL_FPS, period_ns
from edge.sources.video import VideoSource
from tests.support.clips import ClipSpec
from tests.support.sources import read_all


def opened(url: str) -> VideoSource:
    src = open_source(url)
    assert isinstance(src, VideoSource)
    src.open()
    return src


# -- clips ----------------------------------------------------------------------------------------------
def test_clip_as_fast_as_possible(mp4_clip: Path, clip_spec: ClipSpec) -> None:
    t0 = time.monotonic_ns()
    src = opened(f"video://{mp4_clip}?realtime=0")  # open() decodes frame 0: its stamp is from then
    frames = read_all(src)
    assert src.eof and src.read(0) is None
    src.close()
    assert len(frames) == clip_spec.frames
    assert [f.seq for f in frames] == list(range(clip_spec.frames))
    stamps = [f.t_acquired_ns for f in frames]
    assert stamps == sorted(stamps) and stamps[0] >= t0 and stamps[-1] <= time.monotonic_ns()
    for i, f in enumerate(frames):
        assert f.image.shape == (clip_spec.height, clip_spec.width, 3) and f.image.dtype == np.uint8
        assert abs(float(f.image.mean()) - clip_spec.level(i)) < 6  # right order despite lossy coding
        assert f.source_id == "clip.mp4"
        assert f.modality == "US"
        assert f.meta == {
            "file": str(mp4_clip),
            "frame_index": i,
            "loop_pass": 0,
            "still": False,
            "content_id": f"{frames[0].meta['content_id'][:-2]}#{i}",
        }
        assert f.raw is None
    info = src.info
    assert (info.kind, info.fps, info.frame_count, info.width, info.height) == (
        "video",
        clip_spec.fps,
        clip_spec.frames,
        clip_spec.width,
        clip_spec.height,
    )
    assert info.realtime is False


def test_realtime_default_uses_the_container_rate(mp4_clip: Path, clip_spec: ClipSpec) -> None:
    src = opened(f"video://{mp4_clip}")
    assert src.info.realtime is True and src.info.fps == clip_spec.fps
    frames = read_all(src, limit=3)
    src.close()
    gaps = np.diff([f.t_acquired_ns for f in frames])
    assert list(gaps) == [period_ns(clip_spec.fps)] * 2  # scheduled times: exact, not measured


def test_realtime_pacing_schedules_exact_times_and_waits(mp4_clip: Path, clip_spec: ClipSpec) -> None:
    fps = 100.0
    src = opened(f"video://{mp4_clip}?fps={fps:g}")
    t0 = time.monotonic_ns()
    frames = read_all(src)
    elapsed = (time.monotonic_ns() - t0) / 1e9
    src.close()
    assert len(frames) == clip_spec.frames
    stamps = np.array([f.t_acquired_ns for f in frames])
    assert set(np.diff(stamps)) == {period_ns(fps)}
    assert stamps[0] >= t0  # the clock starts at the first read, not at open
    nominal = (clip_spec.frames - 1) / fps
    assert nominal - 0.005 <= elapsed < nominal + 2.0  # loose upper bound: machines are noisy
    assert src.info.fps == fps


def test_a_late_reader_gets_every_frame_with_scheduled_stamps(mp4_clip: Path) -> None:
    fps = 200.0
    src = opened(f"video://{mp4_clip}?fps={fps:g}")
    frames = [src.read(1.0)]
    time.sleep(0.1)  # fall 20 frames behind
    frames += read_all(src, limit=9)
    src.close()
    assert [f.seq for f in frames if f] == list(range(10))  # nothing dropped
    stamps = [f.t_acquired_ns for f in frames if f]
    assert set(np.diff(stamps)) == {period_ns(fps)}  # scheduled capture times, not read times
    assert src.info.extra["late_frames"] >= 5
    assert src.late_frames == src.info.extra["late_frames"]


def test_read_timeout_returns_none_and_keeps_the_frame(mp4_clip: Path) -> None:
    src = opened(f"video://{mp4_clip}?fps=4")
    first = src.read(1.0)
    assert first is not None
    t0 = time.monotonic()
    assert src.read(0.01) is None  # the next frame is due in 250 ms
    assert time.monotonic() - t0 < 0.2
    assert not src.eof
    second = src.read(1.0)
    src.close()
    assert second is not None and second.seq == 1
    assert second.t_acquired_ns - first.t_acquired_ns == period_ns(4)


def test_close_wakes_a_waiting_reader(mp4_clip: Path) -> None:
    src = opened(f"video://{mp4_clip}?fps=0.2")
    assert src.read() is not None
    result: list[Frame | None] = []
    reader = threading.Thread(target=lambda: result.append(src.read()))
    reader.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    src.close()
    reader.join(2.0)
    assert not reader.is_alive() and result == [None]
    assert time.monotonic() - t0 < 1.0


def test_loop_rewinds_forever_with_growing_seq(mp4_clip: Path, clip_spec: ClipSpec) -> None:
    src = opened(f"video://{mp4_clip}?realtime=0&loop=1")
    frames = read_all(src, limit=2 * clip_spec.frames + 5)
    assert not src.eof
    assert src.info.frame_count is None and src.info.extra["frames_per_pass"] == clip_spec.frames
    src.close()
    assert [f.seq for f in frames] == list(range(2 * clip_spec.frames + 5))
    n = 2 * clip_spec.frames + 5
    assert [f.meta["frame_index"] for f in frames] == [i % clip_spec.frames for i in range(n)]
    assert abs(float(frames[clip_spec.frames].image.mean()) - clip_spec.level(0)) < 6


def test_loop_in_realtime_keeps_the_schedule_across_the_rewind(make_clip: Callable[..., Path]) -> None:
    clip = make_clip("short.avi", n=3, fourcc="MJPG")
    src = opened(f"video://{clip}?loop=1&fps=200")
    frames = read_all(src, limit=7)
    src.close()
    assert [f.meta["frame_index"] for f in frames] == [0, 1, 2, 0, 1, 2, 0]
    assert set(np.diff([f.t_acquired_ns for f in frames])) == {period_ns(200)}


def test_other_containers_and_relative_urls(
    avi_clip: Path,
    make_clip: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clip_spec: ClipSpec,
) -> None:
    mov = make_clip("clip.mov")
    for path in (avi_clip, mov):
        src = opened(f"video://{path}?realtime=0")
        assert len(read_all(src)) == clip_spec.frames
        src.close()
    monkeypatch.chdir(tmp_path.parent)
    src = opened(f"video://{tmp_path.name}/clip.avi?realtime=0")
    assert src.path == Path(tmp_path.name) / "clip.avi"
    assert len(read_all(src)) == clip_spec.frames
    src.close()


def test_implausible_container_rate_falls_back_to_30_with_a_warning(
    make_clip: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    clip = make_clip("fast.avi", n=3, fps=1000.0, fourcc="MJPG")
    assert cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FPS) == 1000.0
    with caplog.at_level(logging.WARNING, logger="edge.sources.video"):
        src = opened(f"video://{clip}")
    assert src.info.fps == 30.0
    assert "fast.avi" in caplog.text and "30 fps" in caplog.text
    frames = read_all(src, limit=2)
    src.close()
    assert frames[1].t_acquired_ns - frames[0].t_acquired_ns == period_ns(30)


def test_modality_parameter(mp4_clip: Path) -> None:
    src = opened(f"video://{mp4_clip}?realtime=0&modality=dx")
    frame = src.read()
    src.close()
    assert frame is not None and frame.modality == "DX"


# -- stills ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".png", ".bmp", ".jpg", ".jpeg"])
def test_still_is_one_bgr_frame(tmp_path: Path, ext: str, card: np.ndarray) -> None:
    path = tmp_path / f"card{ext}"
    assert cv2.imwrite(str(path), card)
    src = opened(f"video://{path}")
    frames = read_all(src)
    src.close()
    assert len(frames) == 1 and src.eof
    image = frames[0].image
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8
    if ext in (".png", ".bmp"):
        assert (image == card).all()
    else:  # lossy, chroma-subsampled: compare the middle of each colour quadrant
        for y, x in ((10, 15), (10, 45), (30, 15), (30, 45)):
            assert np.abs(image[y, x].astype(int) - card[y, x]).max() <= 12  # BGR order kept
    assert src.info.frame_count == 1 and src.info.extra["still"] is True


def test_still_loops_at_fps(still_png: Path) -> None:
    src = opened(f"video://{still_png}?loop=1&fps=200")
    frames = read_all(src, limit=5)
    src.close()
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert set(np.diff([f.t_acquired_ns for f in frames])) == {period_ns(200)}
    assert all(f.image is frames[0].image for f in frames)  # shared, read-only, no per-frame copy
    assert not frames[0].image.flags.writeable


def test_still_loops_once_a_second_by_default(still_png: Path) -> None:
    """A looped still is a slow live image (DEFAULT_STILL_FPS), not a repeat as fast as possible."""
    src = opened(f"video://{still_png}?loop=1")
    assert src.info.fps == DEFAULT_STILL_FPS == 1.0 and src.info.realtime is True
    first = src.read(1.0)
    t0 = time.monotonic()
    assert src.read(0.2) is None, "the repeat is not due for a second"
    second = src.read(2.0)
    src.close()
    assert first is not None and second is not None and time.monotonic() - t0 > 0.5
    assert second.t_acquired_ns - first.t_acquired_ns == period_ns(DEFAULT_STILL_FPS)


def test_repeats_of_a_still_carry_the_same_content_id(
    still_png: Path, tmp_path: Path, card: np.ndarray
) -> None:
    src = opened(f"video://{still_png}?loop=1&fps=500")
    frames = read_all(src, limit=4)
    src.close()
    assert [f.meta["loop_pass"] for f in frames] == [0, 1, 2, 3]
    assert all(f.meta["still"] is True and f.meta["frame_index"] == 0 for f in frames)
    assert len({f.meta["content_id"] for f in frames}) == 1
    other = tmp_path / "other.png"
    assert cv2.imwrite(str(other), 255 - card)
    src = opened(f"video://{other}")
    frame = src.read(1.0)
    src.close()
    assert frame is not None and frame.meta["content_id"] != frames[0].meta["content_id"]


def test_a_single_still_is_handed_over_at_once_as_a_recording(still_png: Path) -> None:
    """Not looped: realtime defaults to off, so the runtime gives the still its own result (policy
    EVERY) instead of showing it before its analysis is done."""
    src = opened(f"video://{still_png}")
    assert src.info.realtime is False
    assert src.read(0.5) is not None and src.read(0.5) is None and src.eof
    src.close()
    paced = opened(f"video://{still_png}?realtime=1&fps=100")  # asked for: paced
    assert paced.info.realtime is True and paced.info.fps == 100
    paced.close()


def test_looped_clip_repeats_content_ids_per_pass(mp4_clip: Path, clip_spec: ClipSpec) -> None:
    src = opened(f"video://{mp4_clip}?loop=1&realtime=0")
    frames = read_all(src, limit=2 * clip_spec.frames)
    src.close()
    first, second = frames[: clip_spec.frames], frames[clip_spec.frames :]
    assert [f.meta["content_id"] for f in first] == [f.meta["content_id"] for f in second]
    assert len({f.meta["content_id"] for f in first}) == clip_spec.frames
    assert {f.meta["loop_pass"] for f in second} == {1} and not any(f.meta["still"] for f in frames)


@pytest.mark.parametrize("fps", ["0", "-1", "1001", "inf"])
def test_fps_out_of_range_is_refused_naming_the_range(still_png: Path, fps: str) -> None:
    with pytest.raises(SourceError, match=rf"fps='{fps}' must be a number > 0 and <= 1000"):
        open_source(f"video://{still_png}?fps={fps}")


def test_gray_bgra_and_16_bit_stills_become_bgr_uint8(tmp_path: Path, card: np.ndarray) -> None:
    gray = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (10, 1))
    bgra = np.dstack([card, np.full((40, 60), 128, np.uint8)])
    deep = (np.arange(100, dtype=np.uint16).reshape(10, 10) * 600).astype(np.uint16)
    for name, image in (("gray.png", gray), ("alpha.png", bgra), ("deep.png", deep)):
        assert cv2.imwrite(str(tmp_path / name), image)
    frames = {}
    for name in ("gray.png", "alpha.png", "deep.png"):
        src = opened(f"video://{tmp_path / name}?modality=DX")
        frames[name] = src.read()
        src.close()
    g = frames["gray.png"]
    assert g is not None and g.image.shape == (10, 50, 3) and (g.image[..., 1] == gray).all()
    a = frames["alpha.png"]
    assert a is not None and (a.image == card).all()
    d = frames["deep.png"]
    assert d is not None and d.image.dtype == np.uint8 and d.image.shape == (10, 10, 3)
    assert d.raw is not None and d.raw.dtype == np.uint16 and (d.raw == deep).all()
    assert d.image[0, 0, 0] == 0 and d.image[-1, -1, 0] == 255  # min-max scaled
    assert d.modality == "DX"


# -- bad inputs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fixture", "error", "reason"),
    [
        ("garbage_mp4", CorruptInputError, "cannot open"),
        ("truncated_mp4", CorruptInputError, "cannot open"),
        ("empty_avi", CorruptInputError, "no frame could be decoded"),
    ],
)
def test_undecodable_files(
    fixture: str, error: type[Exception], reason: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(fixture)
    src = open_source(f"video://{path}")
    with pytest.raises(error, match=reason) as caught:
        src.open()
    assert path.name in str(caught.value)
    src.close()  # safe after a failed open


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing\.mp4: no such file"):
        opened(f"video://{tmp_path / 'missing.mp4'}")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    with pytest.raises(UnsupportedSourceError, match=r"clips\.mp4: is a directory"):
        opened(f"video://{folder}")


@pytest.mark.parametrize("name", ["notes.txt", "anim.gif", "noextension"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"x" * 100)
    with pytest.raises(UnsupportedSourceError, match=rf"{re.escape(name)}: unsupported file type"):
        opened(f"video://{path}")


@pytest.mark.parametrize("ext", [".mp4", ".png"])
def test_unreadable_inputs_name_their_cause_not_corruption(tmp_path: Path, ext: str) -> None:
    """OpenCV says only "cannot open" or returns nothing; the source says why before asking it."""
    dangling = tmp_path / f"link{ext}"
    dangling.symlink_to(tmp_path / f"removed{ext}")
    fifo = tmp_path / f"pipe{ext}"
    os.mkfifo(fifo)
    empty = tmp_path / f"empty{ext}"
    empty.write_bytes(b"")
    for path, error, reason in (
        (dangling, SourceError, "dangling symbolic link"),
        (fifo, SourceError, r"not a regular file but a named pipe \(FIFO\)"),
        (empty, CorruptInputError, r"empty file \(0 bytes\)"),
    ):
        with pytest.raises(error, match=rf"{re.escape(path.name)}: {reason}") as caught:
            opened(f"video://{path}")
        assert "OpenCV" not in str(caught.value)


def test_clip_removed_during_a_loop_ends_saying_so(make_clip: Callable[..., Path]) -> None:
    clip = make_clip("gone.mp4", n=3)
    src = opened(f"video://{clip}?loop=1&realtime=0")
    clip.unlink()  # the open capture still reads it; the rewind must reopen it
    with pytest.raises(SourceError, match=r"gone\.mp4: no such file$"):
        read_all(src, limit=10)
    src.close()


def test_garbage_still(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    with pytest.raises(CorruptInputError, match=r"broken\.png: OpenCV cannot decode"):
        opened(f"video://{path}")


def test_clip_truncated_mid_way_delivers_the_good_frames_then_eof(
    truncated_avi: Path, caplog: pytest.LogCaptureFixture, clip_spec: ClipSpec
) -> None:
    src = opened(f"video://{truncated_avi}?realtime=0")
    with caplog.at_level(logging.WARNING, logger="edge.sources.video"):
        frames = read_all(src)
    src.close()
    assert 0 < len(frames) < clip_spec.frames
    assert src.eof
    for i, f in enumerate(frames[:-1]):  # the last one may be cut mid-frame (FFmpeg conceals the rest)
        assert abs(float(f.image.mean()) - clip_spec.level(i)) < 6
    assert "half.avi" in caplog.text and f"of {clip_spec.frames} frames" in caplog.text


def test_read_before_open_and_reopen(mp4_clip: Path) -> None:
    src = open_source(f"video://{mp4_clip}?realtime=0")
    with pytest.raises(SourceError, match="not open"):
        src.read()
    src.open()
    src.open()  # no-op when already open
    assert src.read() is not None
    src.close()
    src.close()
    src.open()  # a closed source opens again, from the start
    frame = src.read()
    src.close()
    assert frame is not None and frame.seq == 0


def test_decoder_threads_parameter(tmp_path: Path) -> None:
    import cv2

    from edge.errors import SourceError
    from edge.sources import open_source

    clip = tmp_path / "c.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (32, 32))
    for i in range(5):
        w.write(np.full((32, 32, 3), i * 40, np.uint8))
    w.release()
    for threads in ("0", "1", "2"):
        src = open_source(f"video://{clip}?realtime=0&threads={threads}")
        src.open()
        frames = [src.read(1.0) for _ in range(5)]
        src.close()
        assert all(f is not None for f in frames)
    for bad in ("1.5", "-1", "33", "1000000", "nan"):
        with pytest.raises(SourceError, match=rf"threads='{bad}' must be a whole number from 0 to 32"):
            open_source(f"video://{clip}?threads={bad}")


def test_received_time_shows_a_late_reader(tmp_path: Path) -> None:
    import cv2

    clip = tmp_path / "c.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 50.0, (16, 16))
    for i in range(6):
        w.write(np.full((16, 16, 3), i * 30, np.uint8))
    w.release()
    src = open_source(f"video://{clip}?fps=50")
    src.open()
    frames = []
    for _ in range(5):
        frames.append(src.read(1.0))
        time.sleep(0.05)  # 2.5 periods per read: the reader falls behind
    src.close()
    lags = [f.received_ns - f.t_acquired_ns for f in frames if f is not None]
    assert len(lags) == 5 and all(lag >= 0 for lag in lags)
    assert lags[-1] > lags[0] + 50_000_000, "capture times stay on schedule while hand-over falls behind"
