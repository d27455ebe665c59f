"""The written part of a published model folder: ``manifest.json``, ``MODEL_CARD.md``, ``DATA_SOURCE.md``.

The recipes compose their own cards (what they measured differs), but write them the same way: the
manifest through ``tools.modelkit.manifest``, a smoke-test run marked at the top of its card so
that its numbers are never read as results, and figures shown alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.modelkit.manifest import MANIFEST_NAME, save

CARD_NAME = "MODEL_CARD.md"
DATA_SOURCE_NAME = "DATA_SOURCE.md"


def figure(value: float | None) -> str:
    """A measured figure to three decimals; ``-`` where there is none (no sample to measure on)."""
    return "-" if value is None else f"{value:.3f}"


def smoke_test_banner(shrunk: str) -> str:
    """The line a ``--tiny`` run's card opens with; ``shrunk`` says what the run made small."""
    return f"> SMOKE TEST (--tiny): {shrunk}; the numbers below mean nothing.\n\n"


def write_model_docs(
    out: Path, manifest: dict[str, Any], card: str, data_source: str, *, smoke_test: str | None = None
) -> Path:
    """Write ``DATA_SOURCE.md``, ``manifest.json`` and ``MODEL_CARD.md`` into ``out``; a smoke-test
    run (``smoke_test``: what it shrank) is marked at the top of its card. Returns the manifest's path."""
    (out / DATA_SOURCE_NAME).write_text(data_source)
    save(out / MANIFEST_NAME, manifest)
    (out / CARD_NAME).write_text((smoke_test_banner(smoke_test) if smoke_test else "") + card)
    return out / MANIFEST_NAME
