"""Background CPU hogs for the bench's loaded scenario: other jobs on a box with few cores.

Each hog is a child process spinning in a loop (the CPU-bound part of a compile, a backup's
compression, another service). They are started and stopped by the bench itself, killed with
their process group on the way out, and never outlive it (``--parent`` style: each checks that
its parent is still there). ``nice``: how many levels below the runtime they run: 5 stands for
the systemd unit's ``Nice=-5`` against ordinary jobs at 0 (docs/performance.md), 0 for equals.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import TracebackType

# Spins, looking up once a second whether its parent (the bench) is still alive.
_HOG = """
import os, sys, time
parent = int(sys.argv[1])
os.nice(int(sys.argv[2]))
while True:
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        pass
    if os.getppid() != parent:
        break
"""


class CpuHogs:
    """``n`` busy child processes while the ``with`` block runs."""

    def __init__(self, n: int = 2, nice: int = 5) -> None:
        if n < 0 or not 0 <= nice <= 19:
            raise ValueError(f"CpuHogs: n must be >= 0 and nice 0..19, got n={n}, nice={nice}")
        self.n = n
        self.nice = nice
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> CpuHogs:
        for _ in range(self.n):  # each lowers its own priority (no preexec_fn: the bench has threads)
            cmd = [sys.executable, "-c", _HOG, str(os.getpid()), str(self.nice)]
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        time.sleep(0.3)  # the interpreters are up and spinning before anything is measured
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        procs, self.procs = self.procs, []
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()

    def cpu_s(self) -> float:
        """CPU seconds the running hogs have had so far (Linux; 0.0 where it cannot be read)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for p in self.procs:
            try:
                with open(f"/proc/{p.pid}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, ValueError, IndexError):
                continue
        return total
