"""Errors of the de-identifier, in the runtime's exception tree."""

from __future__ import annotations

from edge.errors import EdgeError


class DeidError(EdgeError):
    """De-identification could not be done safely; the message names the file, tag or value."""


class KeyFileError(DeidError):
    """The device key file is unreadable, of the wrong size, or readable by others."""
