"""Byte transports for the probe link, opened by URL through a registry of schemes.

``open_transport("serial:///dev/ttyACM0?baud=115200")`` or ``open_transport("loop://NAME")``; new schemes
plug in with ``register_transport(scheme, factory)`` (the idea of pyserial's ``serial_for_url``). A
transport moves raw bytes only; framing lives in ``framing``. A vanished device raises ``LinkDownError``
so the link layer can tell "cable pulled" from "nothing to read yet" (``b""``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit

import serial

DEFAULT_BAUD = 115200  # ignored by CDC-ACM and ptys, needed by real UARTs
WRITE_TIMEOUT_S = 2.0  # a device that takes no bytes this long is treated as gone


class LinkError(Exception):
    """Base of link-layer failures (transport, commands, negotiation)."""


class LinkDownError(LinkError):
    """The transport is gone (cable pulled, device vanished, closed) and must be reopened."""


@runtime_checkable
class Transport(Protocol):
    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Up to ``max_bytes`` bytes; returns as soon as any arrive, ``b""`` after ``timeout`` s."""
        ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """Safe from any thread, also during a read or write (which then raise ``LinkDownError``)."""
        ...

    @property
    def is_open(self) -> bool: ...


TransportFactory = Callable[[str], Transport]
_REGISTRY: dict[str, TransportFactory] = {}


def register_transport(scheme: str, factory: TransportFactory) -> None:
    """Make ``open_transport`` hand URLs of ``scheme`` to ``factory(url)`` (replaces an existing one)."""
    _REGISTRY[scheme.lower()] = factory


def open_transport(url: str) -> Transport:
    scheme = urlsplit(url).scheme.lower()
    factory = _REGISTRY.get(scheme)
    if factory is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown transport scheme {scheme!r} in {url!r} (known: {known})")
    return factory(url)


# --------------------------------------------------------------------------------------------- serial


class SerialTransport:
    """pyserial port. Any ``SerialException``/``OSError`` after opening means the device is gone.

    pyserial is not safe against ``close()`` while another thread reads or writes: the read selects on
    (or reads) an fd that close just set to None (``TypeError``) or, worse, whose number a new file
    already reuses. So this object owns the port's lifetime: reads and writes run under their own lock,
    ``close()`` from any thread aborts them (pyserial's cancel pipes), waits for them to let go, then
    closes; afterwards both raise ``LinkDownError``. Writes time out (``WRITE_TIMEOUT_S``) so a probe that
    stops reading cannot block the writer for ever.
    """

    def __init__(self, port: str, baudrate: int = DEFAULT_BAUD) -> None:
        self.port = port
        try:
            self._ser = serial.Serial(port, baudrate, timeout=0.05, write_timeout=WRITE_TIMEOUT_S)
        except (serial.SerialException, OSError) as exc:
            raise LinkDownError(f"cannot open {port}: {exc}") from exc
        self._timeout = 0.05
        self._closed = False
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SerialTransport:
        parts = urlsplit(url)
        if not parts.path:
            raise ValueError(f"serial URL {url!r} has no device path")
        baud = parse_qs(parts.query).get("baud", [str(DEFAULT_BAUD)])[0]
        try:
            rate = int(baud)
        except ValueError:
            raise ValueError(f"serial URL {url!r}: baud={baud!r} is not a whole number") from None
        if rate <= 0:
            raise ValueError(f"serial URL {url!r}: baud={rate} must be > 0")
        return cls(parts.path, rate)

    @property
    def is_open(self) -> bool:
        return not self._closed

    def read(self, max_bytes: int, timeout: float) -> bytes:
        with self._read_lock:
            if self._closed:
                raise LinkDownError(f"{self.port} is closed")
            try:
                if timeout != self._timeout:  # each change is a tcsetattr, so only when it changes
                    self._ser.timeout = self._timeout = timeout
                # read(1) returns on the first byte; read(max_bytes) would sit out the whole timeout.
                first = self._ser.read(1)
                if not first:
                    if self._closed:  # close() cancelled this read
                        raise LinkDownError(f"{self.port} is closed")
                    if not os.path.exists(self.port):  # udev removed the node: no error until we look
                        raise LinkDownError(f"{self.port} disappeared")
                    return b""
                parts = [first]
                _drain(self._ser.fileno(), max_bytes - 1, parts)
                return b"".join(parts) if len(parts) > 1 else first
            except (serial.SerialException, OSError) as exc:
                raise LinkDownError(f"{self.port}: {exc}") from exc

    def write(self, data: bytes) -> None:
        with self._write_lock:
            if self._closed:
                raise LinkDownError(f"{self.port} is closed")
            try:
                self._ser.write(data)
            except serial.SerialTimeoutException as exc:
                raise LinkDownError(f"{self.port}: the device took no data for {WRITE_TIMEOUT_S} s") from exc
            except (serial.SerialException, OSError) as exc:
                raise LinkDownError(f"{self.port}: {exc}") from exc

    def close(self) -> None:
        """Idempotent and safe from any thread, also while another one reads or writes."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(serial.SerialException, OSError, AttributeError, TypeError):
            self._ser.cancel_read()  # an in-flight read or write returns now, not after its timeout
            self._ser.cancel_write()
        # Closing a vanished device may fail; it is closed either way.
        with self._read_lock, self._write_lock, contextlib.suppress(serial.SerialException, OSError):
            self._ser.close()


def _drain(fd: int, want: int, parts: list[bytes]) -> None:
    """Append what the (non-blocking) tty ``fd`` holds now, up to ``want`` bytes, to ``parts``.

    A tty hands over at most its 4 KiB line-discipline buffer per read(2), so a 512x512 frame is ~65
    reads whatever the size asked for. Through pyserial each was a select, an ioctl and a Timeout
    object apiece, and one wake-up of the reader per 4 KiB; here it is one os.read each, until the tty
    is empty. An error (or a hang-up) keeps the bytes already read: the next read reports it.
    """
    while want > 0:
        try:
            got = os.read(fd, want)
        except OSError:  # BlockingIOError: empty for now
            return
        if not got:
            return
        parts.append(got)
        want -= len(got)


# ----------------------------------------------------------------------------------------------- loop


class _Pipe:
    """One direction of a loop link: a byte buffer guarded by a condition."""

    def __init__(self, cond: threading.Condition) -> None:
        self.buf = bytearray()
        self.cond = cond

    def take(self, max_bytes: int) -> bytes:
        out = bytes(self.buf[:max_bytes])
        del self.buf[:max_bytes]
        return out


class _LoopLink:
    """Shared state of a loop pair: two pipes and a plug generation (bumped by each reconnect)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.to_device = _Pipe(self.cond)
        self.to_host = _Pipe(self.cond)
        self.plugged = True
        self.generation = 0


class LoopTransport:
    """Host end of a loop pair. A handle from before a cable pull stays dead, like a real tty."""

    def __init__(self, link: _LoopLink) -> None:
        self._link = link
        with link.cond:
            if not link.plugged:
                raise LinkDownError("loop device is unplugged")
            self._generation = link.generation
        self._open = True

    def _check(self) -> None:
        link = self._link
        if not self._open:
            raise LinkDownError("loop transport is closed")
        if not link.plugged or link.generation != self._generation:
            raise LinkDownError("loop device was unplugged")

    @property
    def is_open(self) -> bool:
        return self._open

    def read(self, max_bytes: int, timeout: float) -> bytes:
        link = self._link
        deadline = time.monotonic() + timeout
        with link.cond:
            while True:
                self._check()
                if link.to_host.buf:
                    return link.to_host.take(max_bytes)
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                link.cond.wait(left)

    def write(self, data: bytes) -> None:
        with self._link.cond:
            self._check()
            self._link.to_device.buf += data
            self._link.cond.notify_all()

    def close(self) -> None:
        with self._link.cond:
            self._open = False
            self._link.cond.notify_all()


class LoopDevice:
    """Device end of a loop pair, for tests. Never raises: while unplugged, reads are empty and writes
    vanish, like a probe talking to no host. ``disconnect()``/``reconnect()`` simulate a cable pull."""

    def __init__(self, link: _LoopLink, name: str | None) -> None:
        self._link = link
        self.name = name
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    def read(self, max_bytes: int, timeout: float) -> bytes:
        link = self._link
        deadline = time.monotonic() + timeout
        with link.cond:
            while True:
                if link.plugged and link.to_device.buf:
                    return link.to_device.take(max_bytes)
                left = deadline - time.monotonic()
                if left <= 0 or not self._open:
                    return b""
                link.cond.wait(left)

    def write(self, data: bytes) -> None:
        with self._link.cond:
            if self._link.plugged:
                self._link.to_host.buf += data
                self._link.cond.notify_all()

    def disconnect(self) -> None:
        """Pull the cable: bytes in flight are lost and every open host handle fails."""
        with self._link.cond:
            self._link.plugged = False
            self._link.to_host.buf.clear()
            self._link.to_device.buf.clear()
            self._link.cond.notify_all()

    def reconnect(self) -> None:
        """Plug back in: the host must reopen ``loop://NAME`` (old handles stay dead)."""
        with self._link.cond:
            self._link.plugged = True
            self._link.generation += 1
            self._link.cond.notify_all()

    def close(self) -> None:
        self.disconnect()
        self._open = False
        if self.name is not None:
            with _LOOPS_LOCK:
                if _LOOPS.get(self.name) is self._link:
                    del _LOOPS[self.name]


_LOOPS: dict[str, _LoopLink] = {}
_LOOPS_LOCK = threading.Lock()


def loop_pair(name: str | None = None) -> tuple[LoopTransport, LoopDevice]:
    """A joined (host_end, device_end) pair; with ``name``, ``loop://name`` opens new host ends."""
    link = _LoopLink()
    if name is not None:
        with _LOOPS_LOCK:
            _LOOPS[name] = link
    return LoopTransport(link), LoopDevice(link, name)


def _open_loop(url: str) -> Transport:
    name = urlsplit(url).netloc
    with _LOOPS_LOCK:
        link = _LOOPS.get(name)
    if link is None:
        raise LinkDownError(f"no loop pair named {name!r}")
    return LoopTransport(link)


register_transport("serial", SerialTransport.from_url)
register_transport("loop", _open_loop)
