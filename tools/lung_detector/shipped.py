"""Which leave-one-source-out figures are the published model's: the variant as the runtime runs it."""

from __future__ import annotations

from tools.lung_detector.recipe import Recipe


def shipped(variant: str, r: Recipe) -> str:
    """The leave-one-source-out key of ``variant`` with the recipe's classical stages, if any
    (``loso`` scores each variant alone and with the consensus stage)."""
    return f"{variant}+consensus" if "consensus_b_lines" in r.postprocess else variant
