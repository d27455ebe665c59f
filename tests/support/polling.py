"""Waiting in a test for something another thread or process does, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    cond: Callable[[], bool],
    timeout_s: float,
    what: str,
    why: Callable[[], str] | None = None,
    *,
    poll_s: float = 0.05,
) -> None:
    """Return once ``cond()`` is true; after ``timeout_s`` fail naming ``what`` (and ``why()``: the
    state that explains it, such as the last error)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            detail = f": {why()}" if why is not None else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{detail}")
        time.sleep(poll_s)
