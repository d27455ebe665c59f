"""Sections of the runtime's TOML configuration, one module per concern, composed by ``edge.config``.

``edge/config.py`` holds the top-level ``Config`` and the loader; a new section with more than a few
fields goes here (``Section`` is the base: unknown keys refused, values frozen).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
