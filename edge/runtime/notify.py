"""sd_notify: tell systemd the service is ready, alive (the watchdog), what it is doing, stopping.

The protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace); the watchdog interval comes
from ``$WATCHDOG_USEC``, and applies to this process only when ``$WATCHDOG_PID`` is unset or names
it. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.

No library: this is the whole protocol, and the candidates cost more than they give.
``systemd-python`` needs libsystemd's headers and a compiler on the device; ``sdnotify`` (PyPI)
has had no release since 2017 and does not read the watchdog interval. What this module adds to
the few lines of socket code is what a watchdog needs of them: sending never blocks the caller for
long (a 1 s timeout) and never raises into it (a failure is logged, once per kind of failure).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 1.0  # systemd reads its notify socket at once; a full queue must not hang a stage


class Notify:
    """One process's channel to systemd. Thread-safe: the watchdog thread and the main thread
    both send on it."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        """``address``: the socket as ``$NOTIFY_SOCKET`` names it (None: not under systemd).
        ``watchdog_usec``: systemd's watchdog interval (``WatchdogSec=``), None when there is none."""
        self.address = address or None
        self.watchdog_s = watchdog_usec / 1e6 if watchdog_usec else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed: set[str] = set()  # kinds of failure already logged

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notify:
        """The channel systemd set up for this process, read from its environment."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and not address.startswith(("/", "@")):
            # systemd >= 254 may name a vsock ("vsock:CID:PORT") for a VM's manager; not for a device.
            log.warning(
                "NOTIFY_SOCKET=%s: only a path or an @abstract name is supported; not notifying", address
            )
            address = None
        return cls(address, watchdog_usec=_watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        """Running under systemd with a notify socket (Type=notify)."""
        return self.address is not None

    # -- the messages the runtime sends --------------------------------------------------------
    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *_status(status))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(*_status(text))

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *_status(status))

    def send(self, *fields: str) -> bool:
        """Send ``fields`` as one notification; True when systemd's socket took it. False when not
        under systemd, or when sending failed (logged, never raised: the live loop goes on)."""
        if self.address is None or not fields:
            return False
        data = "\n".join(fields).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = self._connect(self.address)
                self._sock.send(data)
            except OSError as exc:
                self._close_locked()  # reconnect on the next send: systemd may have re-executed
                kind = type(exc).__name__
                if kind not in self._failed:
                    self._failed.add(kind)
                    log.warning("sd_notify to NOTIFY_SOCKET=%s failed: %s", self.address, exc)
                return False
        return True

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _connect(address: str) -> socket.socket:
        # '@name' is Linux's abstract namespace: the name starts with a NUL byte, and has no file.
        target = "\0" + address[1:] if address.startswith("@") else address
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.connect(target)
        except OSError:
            sock.close()
            raise
        return sock

    def _close_locked(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status(text: str | None) -> tuple[str, ...]:
    # One line: a newline in the text would start a field of its own (the protocol is KEY=value lines).
    return () if text is None else ("STATUS=" + " ".join(text.split()),)


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """``$WATCHDOG_USEC`` when the watchdog is this process's (as sd_watchdog_enabled decides)."""
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None  # set for another process (a parent shell, say): not ours to feed
    try:
        usec = int(raw)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning("WATCHDOG_USEC=%r is not a positive number of microseconds; not pinging", raw)
        return None
    return usec
