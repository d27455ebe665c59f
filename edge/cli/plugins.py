"""Command families from other installed packages, found by entry point, never imported by name.

A package adds ``edge <name>`` by declaring, in its own metadata::

    [project.entry-points."scanner_edge.commands"]
    <name> = "its_package.cli:add_parser"    # add_parser(subparsers) registers the command

This is how the reference ingest (``edge_ingest``, its own package) provides ``edge ingest`` while
``edge`` never imports it: the layering contract forbids that import, and a device image may leave
the ingest out.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger("edge")

GROUP = "scanner_edge.commands"


def add_parsers(sub: Any) -> list[str]:
    """Let every installed command family register itself; returns the names that did."""
    added = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            ep.load()(sub)
        except Exception as exc:  # one broken add-on must not take `edge run` down with it
            log.warning("edge: the %r command from %s is unavailable: %s", ep.name, ep.value, exc)
            continue
        added.append(ep.name)
    return added
