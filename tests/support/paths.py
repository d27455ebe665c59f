"""The repository's folders, and the ``edge`` command as the tests run it (this interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
DOCS = REPO / "docs"

EDGE = [sys.executable, "-m", "edge"]


def run_edge(
    *args: str | Path, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``edge ARGS`` in a child process, output captured as text; ``env`` replaces the environment."""
    return subprocess.run(
        [*EDGE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def env_without(*names: str, **extra: str) -> dict[str, str]:
    """This process's environment less ``names``, plus ``extra``: for a child that must not inherit them."""
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env
