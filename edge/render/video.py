"""The overlay recording: a video file that survives SIGKILL, and that says when the disk is full.

Container. An MP4 is unplayable until its index ("moov") is written at close, so a SIGKILL, an OOM
kill or a power cut lost the whole exam ("moov atom not found"). Fragmented MP4 would do, but
OpenCV's VideoWriter (its FFmpeg backend; the opencv-python build has no GStreamer) hands
OPENCV_FFMPEG_WRITER_OPTIONS to the encoder, not to the muxer, so ``movflags`` cannot be set. So
the runtime records MPEG-TS (``recording_suffix``): made for broadcast, self-synchronising
188-byte packets with no index and no trailer; a file cut anywhere plays up to the cut (less what
the encoder still held). Codecs TS cannot carry (MJPG, VP8/9) go into Matroska, which loses at
most the cluster being written. OpenCV's "tag ... is not supported with codec id 12 and format
'mpegts'", printed at every open for any fourcc (TS streams carry no codec tag; the codec is MPEG-4
either way), is dropped (``encoder.open_writer``).

Disk errors. VideoWriter.write returns nothing and FFmpeg's write errors never reach Python: a full
disk gave "wrote 800 frames" and a torn file. For the streamable containers the encoder writes
into a FIFO, and a thread of ours copies it into the file with os.write, where ENOSPC and EFBIG
are raised; ``show`` then raises DisplayError from that OSError (an MP4 path, which the muxer must
seek in, is written directly, as before).

Encoder. By default the encoding runs in a child process (``edge.render.encoder``), fed through
shared memory: it costs as much CPU as the models and would otherwise share the runtime's one
interpreter. Its CPU time is reported with the run's (``encoder_cpu_ns``). ``process=False`` keeps
it on a thread of this process; where no child can be started, that is the fallback.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from edge.render import encoder
from edge.render.encoder import EncoderError, EncoderProcess, NoRing
from edge.render.sink import DisplayError, to_bgr

log = logging.getLogger(__name__)

STREAMABLE = frozenset({".ts", ".mkv"})  # containers written front to back, never seeked in
# The codecs an MPEG transport stream carries (MPEG-1/2/4 Part 2, H.264, HEVC), by OpenCV fourcc.
_TS_CODECS = frozenset(
    {"mp4v", "xvid", "fmp4", "divx", "dx50", "mpg1", "mpg2", "pim1", "h264", "avc1", "x264", "hevc", "hev1"}
)


def recording_suffix(fourcc: str) -> str:
    """The container that survives a SIGKILL for ``fourcc``: MPEG-TS when it carries the codec."""
    return ".ts" if fourcc.lower() in _TS_CODECS else ".mkv"


class _NoFifo(Exception):
    """No FIFO could be made here (no mkfifo, a temporary folder that refuses one)."""


class _FilePump:
    """A FIFO the encoder writes into, copied into ``target`` by a thread that sees the disk's errors."""

    def __init__(self, target: Path) -> None:
        self.bytes = 0
        self.error: OSError | None = None
        self._fds: list[int] = []
        try:
            self._dir = Path(tempfile.mkdtemp(prefix="edge-video-"))
            self.fifo = self._dir / f"overlay{target.suffix}"  # FFmpeg picks the container by the name
            os.mkfifo(self.fifo, 0o600)
            self._rfd = self._open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
            # Our own write end: the read end sees no EOF before the encoder opens the FIFO (or if it
            # never does); closed last, it ends the copy once the encoder has closed its end.
            self._hold = self._open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.set_blocking(self._rfd, True)
        except (OSError, AttributeError) as exc:
            self._release()
            raise _NoFifo(str(exc)) from exc
        try:
            self._fd = self._open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(target=self._copy, name="video-file", daemon=True)
        self._thread.start()

    def _open(self, path: Path, flags: int, mode: int = 0o600) -> int:
        fd = os.open(path, flags | os.O_CLOEXEC, mode)
        self._fds.append(fd)
        return fd

    def _copy(self) -> None:
        while chunk := os.read(self._rfd, 1 << 16):
            if self.error is not None:
                continue  # drained all the same, so the encoder never blocks on a full pipe
            view = memoryview(chunk)
            try:
                while view:
                    n = os.write(self._fd, view)
                    self.bytes += n
                    view = view[n:]
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        """Once the encoder has closed its end: the copy ends with what is in the pipe, then fsync."""
        if self._hold in self._fds:
            self._fds.remove(self._hold)
            os.close(self._hold)
        self._thread.join(30)
        if self._thread.is_alive():  # a disk that hangs: leave the thread its descriptors
            log.error("video file copy did not finish within 30 s (a hung disk?)")
            return
        if self.error is None:
            try:
                os.fsync(self._fd)  # with delayed allocation a full disk may only show here
            except OSError as exc:
                self.error = exc
        self._release()

    def _release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if hasattr(self, "_dir"):
            shutil.rmtree(self._dir, ignore_errors=True)


class VideoFileSink:
    """Writes every frame to a video file; the writer opens on the first frame, at its size.

    Later frames of another size are resized to that size; gray frames are converted to BGR.
    With ``background`` (the runtime's default) encoding runs on a writer thread fed by a small
    bounded queue: colour conversion and encoding cost as much as the model on small CPUs and
    overlap with drawing the next frame; a full queue makes ``show`` wait (never drops a frame).
    ``expendable``: on a full disk the runtime stops the recording and keeps the run going.
    """

    expendable = True

    def __init__(
        self,
        path: str | Path,
        fourcc: str = "mp4v",
        *,
        default_fps: float = 30.0,
        background: bool = True,
        queue_size: int = 4,
        process: bool = True,
    ) -> None:
        if len(fourcc) != 4:
            raise DisplayError(f"video codec must be a 4-character fourcc, got {fourcc!r} for {path}")
        self.name = "video"
        self.path = Path(path)
        self.fourcc = fourcc
        self.default_fps = default_fps
        self._frames = 0  # encoded in this process
        self._fps: float | None = None
        self._writer: cv2.VideoWriter | EncoderProcess | None = None
        self._pump: _FilePump | None = None
        self._size: tuple[int, int] | None = None  # (width, height) the writer was opened with
        self._queue_size = queue_size
        self._queue: queue.Queue[np.ndarray | None] | None = queue.Queue(queue_size) if background else None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._encoder: EncoderProcess | None = None
        if background and process:  # started now: its interpreter warms while the run sets up
            try:
                self._encoder = encoder.take()  # one started early, if the runtime did
                self._queue = None
            except OSError as exc:
                log.warning("no encoder process (%s): the recording is encoded on a thread", exc)

    @property
    def frames_written(self) -> int:
        """Frames encoded so far (by the encoder process, when there is one)."""
        return self._frames + (self._encoder.frames_done if self._encoder is not None else 0)

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """Wait for the encoder process to be able to open at once (True without one): a bench
        measures the steady state, not an interpreter starting."""
        return self._encoder.wait_ready(timeout_s) if self._encoder is not None else True

    def encoder_cpu_ns(self) -> int:
        """CPU time of the encoder process so far (0 when encoding in this process)."""
        return self._encoder.cpu_ns() if self._encoder is not None else 0

    @property
    def failure(self) -> BaseException | None:
        """What stopped the file being written (a full disk), if anything has."""
        return self._failure or (self._pump.error if self._pump is not None else None)

    @property
    def bytes_written(self) -> int | None:
        """Bytes in the file so far; None when written directly by the encoder (an MP4)."""
        return self._pump.bytes if self._pump is not None else None

    def open(self, width: int, height: int, fps: float | None) -> None:
        # fps may be unknown for a live source; the file still needs one.
        self._fps = fps if fps and fps > 0 else self.default_fps
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DisplayError(f"cannot create the folder for video {self.path}: {exc}") from exc

    def _open_writer(self, width: int, height: int) -> cv2.VideoWriter | EncoderProcess:
        if self._fps is None:
            self.open(width, height, None)
        fps = self._fps or self.default_fps
        target = str(self.path)
        if self.path.suffix.lower() in STREAMABLE:
            try:
                self._pump = _FilePump(self.path)
                target = str(self._pump.fifo)
            except _NoFifo as exc:
                log.warning("video %s is written by the encoder itself (no FIFO here: %s): a full disk "
                            "will not be seen", self.path, exc)  # fmt: skip
            except OSError as exc:
                raise DisplayError(f"cannot write video {self.path}: {exc.strerror or exc}") from exc
        writer: cv2.VideoWriter | EncoderProcess
        why = "OpenCV's VideoWriter did not open (codec not in this build, or path not writable)"
        if self._encoder is not None:
            writer = self._encoder
            try:
                writer.open(target, self.fourcc, fps, (width, height))
                opened = True
            except NoRing as exc:  # no shared memory here: the thread of this process encodes
                log.warning("video %s is encoded in this process: %s", self.path, exc)
                self._encoder.stop()
                self._encoder, self._queue = None, queue.Queue(self._queue_size)
            except EncoderError as exc:
                opened, why = False, f"{exc} (codec not in this build, or path not writable)"
        if self._encoder is None:
            plain: cv2.VideoWriter = encoder.open_writer(target, self.fourcc, fps, (width, height))
            writer, opened = plain, plain.isOpened()
        if not opened:
            if self._pump is not None:
                self._pump.close()
                self._pump = None
                self.path.unlink(missing_ok=True)  # nothing was written: no empty file is left
            raise DisplayError(
                f"cannot write video {self.path} with codec {self.fourcc!r} "
                f"({width}x{height}, {fps:g} fps): {why}"
            )
        self._size = (width, height)
        log.info(
            "writing overlay video to %s (%s, %dx%d, %g fps)", self.path, self.fourcc, width, height, fps
        )
        return writer

    def show(self, image: np.ndarray, frame_seq: int) -> None:
        failure = self.failure
        if failure is not None:
            raise DisplayError(
                f"writing video {self.path} failed after {self.frames_written} frames: {failure}"
            ) from failure
        image = to_bgr(image)
        h, w = image.shape[:2]
        if self._writer is None:
            self._writer = self._open_writer(w, h)
        if (w, h) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        if isinstance(self._writer, EncoderProcess):
            try:
                self._writer.write(image)  # copied into shared memory: the caller may reuse its buffer
            except EncoderError as exc:
                self._failure = exc
                raise DisplayError(
                    f"writing video {self.path} failed after {self.frames_written} frames: {exc}"
                ) from exc
            return
        if self._queue is None:
            self._writer.write(image)
            self._frames += 1
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, name="video-writer", daemon=True)
            self._thread.start()
        self._queue.put(image.copy())  # the caller reuses its buffer for the next frame

    def _write_loop(self) -> None:
        assert self._queue is not None and self._writer is not None
        while (item := self._queue.get()) is not None:
            try:
                self._writer.write(item)
                self._frames += 1
            except Exception as exc:  # reported on the next show()
                self._failure = exc

    def wants_stop(self) -> bool:
        return False

    def close(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)  # after the frames already queued: all of them get written
            self._thread.join()
            self._thread = None
        if self._writer is None:
            if self._encoder is not None:
                self._encoder.stop()  # never opened: the child just ends
            return
        if isinstance(self._writer, EncoderProcess):
            try:
                self._writer.close()
            except EncoderError as exc:
                self._failure = self._failure or exc
        else:
            self._writer.release()
        self._writer = None
        if self._pump is not None:
            self._pump.close()
        failure = self.failure
        if failure is not None:
            log.error(
                "video %s is cut short: %s; it plays up to where the disk took it (%d frames encoded)",
                self.path, failure, self.frames_written,
            )  # fmt: skip
        else:
            size = self.bytes_written
            mb = f" ({size / 2**20:.1f} MB)" if size is not None else ""
            log.info("wrote %d frames%s to %s", self.frames_written, mb, self.path)
