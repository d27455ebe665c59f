"""Run a ``VirtualProbe`` on a pseudo-terminal, with cable pulls (``Faults.disconnect_at_s``).

A pty cannot be "unplugged and replugged" under the same name: closing the master destroys it, and
the next ``os.openpty()`` gives a NEW ``/dev/pts/N``. So ``link_path`` names a symlink that is
atomically re-pointed (``os.replace``) at the current slave on every (re)open; the host opens the
link, as it would a stable udev name (``/dev/serial/by-id/...``), and reconnects by the same URL.
"""

from __future__ import annotations

import contextlib
import os
import threading
import tty

from firmware_bridge.emulator import FdPort, VirtualProbe


def open_raw_pty() -> tuple[int, int, str]:
    """(master fd, slave fd, slave path), slave in raw mode (no echo, no line discipline)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def point_link(link: str, target: str) -> None:
    tmp = f"{link}.tmp{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)  # atomic: a host opening the link sees the old or the new pty, never none


class PtyProbe:
    def __init__(self, probe: VirtualProbe, link_path: str | None = None) -> None:
        self.probe, self.link_path = probe, link_path
        self.path: str | None = None
        self.opens = 0
        self.reopened = threading.Event()  # set on each reopen after a cable pull (tests wait on it)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fds: tuple[int, int] | None = None

    def _open(self) -> None:
        master, slave, path = open_raw_pty()
        # Keep our slave fd open: the master then never reads EIO when the host closes and reopens.
        self._fds, self.path = (master, slave), path
        self.opens += 1
        if self.link_path:
            point_link(self.link_path, path)

    def _close(self) -> None:
        if self._fds is not None:
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds = None

    def start(self) -> str:
        """Open the pty and serve it in a thread; returns the slave path."""
        self._open()
        self._thread = threading.Thread(target=self._run, name="virtual-probe", daemon=True)
        self._thread.start()
        assert self.path is not None
        return self.path

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                assert self._fds is not None
                why = self.probe.serve(FdPort(self._fds[0]), self._stop)
                self._close()
                if why != "disconnect" or self._stop.wait(self.probe.injector.reconnect_after()):
                    break
                self._open()
                self.reopened.set()
        finally:
            self._close()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()
        if self.link_path:
            with contextlib.suppress(OSError):
                os.unlink(self.link_path)
