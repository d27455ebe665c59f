"""The bench's CPU hogs: they burn CPU at the priority asked for, and are gone after the block."""

from __future__ import annotations

import os
import time

import pytest

from edge.runtime.loadgen import CpuHogs


def test_hogs_spin_at_a_lower_priority_and_stop_with_the_block() -> None:
    with CpuHogs(2, nice=7) as hogs:
        pids = [p.pid for p in hogs.procs]
        deadline = time.monotonic() + 30  # on a busy machine, niced hogs may wait for a core
        while hogs.cpu_s() < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hogs.cpu_s() >= 0.05
        for pid in pids:
            assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)
    assert hogs.procs == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="nice"):
        CpuHogs(1, nice=25)
    with CpuHogs(0) as none:
        assert none.procs == [] and none.cpu_s() == 0.0
