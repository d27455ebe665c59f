"""The recording's encoder in a process of its own, fed through shared memory.

Encoding the overlay video costs about as much CPU as both models together (~1.7 ms a 512x512
frame on a 2-core VM) and, in the runtime's process, it shares one interpreter with every stage.
Here a child interpreter (``python -m edge.render.encoder``) runs OpenCV's VideoWriter; the
runtime copies each composed frame into a ring of slots in a memory-mapped file (``/dev/shm``
where there is one) and sends the slot over the child's stdin; the child answers each frame
once encoded, which frees its slot. A full ring makes ``write`` wait (no frame is ever dropped),
as the in-process writer's queue did. The child's CPU time is read from /proc and reported beside
the runtime's (``EncoderProcess.cpu_ns``), not hidden: it is the same work on another core.

Protocol (one line each way per message): ``ready`` once its imports are done; ``open {json}`` ->
``ok`` | ``err <why>``; ``f <slot>`` -> ``d``; ``close`` -> ``closed <cpu ns>``. EOF on stdin (the
runtime gone) ends it. Starting an interpreter with OpenCV takes a few hundred ms: ``prestart``
starts one early (the runtime does, before loading its models) and the first sink takes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any

import numpy as np

log = logging.getLogger(__name__)

RING_BYTES = 64 * 2**20  # at most this much shared memory; 4 to 16 slots
_START_S = 30.0  # the child's interpreter and OpenCV import, on a slow box under load
_TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


class EncoderError(Exception):
    """The encoder process could not start, open the writer, or went away; the message says why."""


class NoRing(EncoderError):
    """No shared memory for the frames (a full /dev/shm, a file size limit): encode in-process."""


def _ring_dir() -> str:
    return (
        "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    )


_spare: EncoderProcess | None = None
_spare_lock = threading.Lock()


def prestart() -> None:
    """Start an encoder process now, for the next sink to take warm (no-op if one is waiting)."""
    global _spare
    with _spare_lock:
        if _spare is None or _spare.dead:
            _spare = EncoderProcess()


def take() -> EncoderProcess:
    """The process ``prestart`` started, or a new one."""
    global _spare
    with _spare_lock:
        spare, _spare = _spare, None
    return spare if spare is not None and not spare.dead else EncoderProcess()


class EncoderProcess:
    """The parent's side: started at once (the interpreter warms while the run sets up), opened at
    the first frame's size, fed frame by frame, closed with every frame encoded."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "edge.render.encoder"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in: IO[bytes] = self._proc.stdin
        self._out: IO[bytes] = self._proc.stdout
        self._cond = threading.Condition()
        self._replies: list[str] = []  # answers to open / close, in order
        self._in_flight = 0
        self.frames_done = 0
        self.dead: str | None = None  # why the child is gone, once it is
        self._final_cpu_ns: int | None = None
        self._ring: np.ndarray | None = None
        self._mmap: mmap.mmap | None = None
        self._slot = 0
        self.ready = threading.Event()  # its imports are done: an open is answered at once
        self._reader = threading.Thread(target=self._read_loop, name="video-encoder-acks", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read_loop(self) -> None:
        for raw in self._out:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                if line == "d":
                    self._in_flight -= 1
                    self.frames_done += 1
                elif line == "ready":
                    self.ready.set()
                else:
                    self._replies.append(line)
                self._cond.notify_all()
        with self._cond:
            code = self._proc.poll()
            self.dead = self.dead or f"the encoder process ended (exit {code})"
            self._cond.notify_all()

    def wait_ready(self, timeout_s: float = _START_S) -> bool:
        """Wait until the child can open a writer at once (False: gone, or not within the time)."""
        deadline = time.monotonic() + timeout_s
        while not self.ready.wait(0.05):
            if self.dead or time.monotonic() > deadline:
                return False
        return True

    def _send(self, line: str) -> None:
        try:
            self._in.write(line.encode() + b"\n")
            self._in.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise EncoderError(self.dead or f"the encoder process is gone: {exc}") from exc

    def _reply(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._replies:
                left = deadline - time.monotonic()
                if self.dead or left <= 0:
                    raise EncoderError(
                        self.dead or f"the encoder process did not answer within {timeout_s:g} s"
                    )
                self._cond.wait(left)
            return self._replies.pop(0)

    def open(self, target: str, fourcc: str, fps: float, size: tuple[int, int]) -> None:
        """Open the child's writer on ``target``; EncoderError with OpenCV's refusal if it cannot."""
        w, h = size
        frame_bytes = w * h * 3
        slots = int(min(16, max(4, RING_BYTES // max(frame_bytes, 1))))
        try:
            fd, ring_path = tempfile.mkstemp(prefix="edge-encoder-", dir=_ring_dir())
        except OSError as exc:
            raise NoRing(f"cannot make the frame ring: {exc}") from exc
        try:
            try:
                os.ftruncate(fd, slots * frame_bytes)
                self._mmap = mmap.mmap(fd, slots * frame_bytes)
            except OSError as exc:
                raise NoRing(f"cannot make the {slots * frame_bytes} byte frame ring: {exc}") from exc
            self._ring = np.frombuffer(self._mmap, np.uint8).reshape(slots, h, w, 3)
            msg = {"target": target, "fourcc": fourcc, "fps": fps, "w": w, "h": h, "slots": slots,
                   "ring": ring_path}  # fmt: skip
            self._send("open " + json.dumps(msg))
            answer = self._reply(_START_S)
        finally:
            os.close(fd)
            os.unlink(ring_path)  # both sides have it mapped (or it failed): nothing left in /dev/shm
        if answer != "ok":
            self._release_ring()
            raise EncoderError(answer.removeprefix("err ").strip() or answer)

    def write(self, image: np.ndarray) -> None:
        """Copy ``image`` (the opened size, BGR uint8) into a free slot and have it encoded."""
        ring = self._ring
        assert ring is not None, "write before open"
        with self._cond:
            while self._in_flight >= len(ring):
                if self.dead:
                    raise EncoderError(self.dead)
                self._cond.wait(1.0)
            self._in_flight += 1
        slot = self._slot
        self._slot = (slot + 1) % len(ring)
        np.copyto(ring[slot], image)
        self._send(f"f {slot}")

    def close(self, timeout_s: float = 30.0) -> None:
        """Encode what was sent, release the writer (its file complete) and end the child."""
        try:
            if self._ring is not None and not self.dead:
                self._send("close")
                answer = self._reply(timeout_s)
                if answer.startswith("closed "):
                    self._final_cpu_ns = int(answer.split()[1])
        finally:
            self._release_ring()
            self.stop()

    def stop(self) -> None:
        """End the child without closing its writer (a sink never opened, or one given up on)."""
        if self._proc.poll() is None:
            if self._final_cpu_ns is None:
                self._final_cpu_ns = self.cpu_ns()
            with contextlib.suppress(OSError):
                self._in.close()
            try:
                self._proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(5.0)
        self._out.close()

    def _release_ring(self) -> None:
        self._ring = None
        if self._mmap is not None:
            with contextlib.suppress(BufferError):  # a view still held somewhere: the GC unmaps it
                self._mmap.close()
            self._mmap = None

    def cpu_ns(self) -> int:
        """The child's CPU time so far (user + system; its final figure once it has ended)."""
        if self._final_cpu_ns is not None and self._proc.poll() is not None:
            return self._final_cpu_ns
        try:
            with open(f"/proc/{self._proc.pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            return round((int(fields[11]) + int(fields[12])) * _TICK_NS)
        except (OSError, ValueError, IndexError):
            return self._final_cpu_ns or 0


# OpenCV checks the fourcc against the container's codec-tag table. MPEG-TS has none (a TS stream
# names its codec by stream type, not by tag), so for every fourcc OpenCV prints "tag ... is not
# supported with codec id N and format 'mpegts / ...'" to file descriptor 2 at each open, while the
# stream is that fourcc's codec all the same (MPEG-4 Part 2 for mp4v; the crash-safe container is
# why TS, see edge.render.video). Matroska takes 'mp4v' without a word, but loses the cluster
# being written. That one line is dropped at open; anything else printed then is passed on.
_TS_TAG_NOTE = b"is not supported with codec id"


def open_writer(target: str, fourcc: str, fps: float, size: tuple[int, int]) -> Any:
    """OpenCV's VideoWriter on ``target``, without the meaningless codec-tag warning for MPEG-TS."""
    import cv2

    def make() -> Any:
        return cv2.VideoWriter(target, cv2.VideoWriter.fourcc(*fourcc), fps, size)

    if not target.lower().endswith(".ts"):
        return make()
    with tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(caught.fileno(), 2)
            writer = make()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        for line in caught.read().splitlines(keepends=True):
            if not (_TS_TAG_NOTE in line and b"mpegts" in line):
                os.write(2, line)
    return writer


def _serve() -> int:  # pragma: no cover - runs in the child (tests drive it through EncoderProcess)
    import cv2

    cv2.setNumThreads(1)  # one core's worth: the runtime's threads need the others
    out = sys.stdout.buffer
    writer: cv2.VideoWriter | None = None
    ring: np.ndarray | None = None

    def say(line: str) -> None:
        out.write(line.encode() + b"\n")
        out.flush()

    say("ready")

    for raw in sys.stdin.buffer:
        cmd, _, arg = raw.decode("utf-8").rstrip("\n").partition(" ")
        if cmd == "f" and writer is not None and ring is not None:
            writer.write(ring[int(arg)])
            say("d")
        elif cmd == "open":
            m = json.loads(arg)
            ring = np.memmap(m["ring"], np.uint8, mode="r", shape=(m["slots"], m["h"], m["w"], 3))
            writer = open_writer(m["target"], m["fourcc"], m["fps"], (m["w"], m["h"]))
            if writer.isOpened():
                say("ok")
            else:
                writer = ring = None
                say("err OpenCV's VideoWriter did not open")
        elif cmd == "close":
            if writer is not None:
                writer.release()
                writer = None
            t = os.times()
            say(f"closed {round((t.user + t.system) * 1e9)}")
    if writer is not None:
        writer.release()
    return 0


if __name__ == "__main__":  # pragma: no cover - the child
    logging.basicConfig(level=logging.WARNING)
    sys.exit(_serve())
