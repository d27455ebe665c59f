"""The runtime's exception tree.

Every error the runtime raises on purpose is an ``EdgeError``; third-party errors are
translated at the boundary with ``raise ... from exc`` so callers catch one family and the
message always names the file, key or field at fault.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error raised on purpose by the runtime."""


class ConfigError(EdgeError):
    """The configuration file or a command-line value is invalid."""


class SourceError(EdgeError):
    """A frame source could not be opened or read."""


class UnsupportedSourceError(SourceError):
    """The URL scheme or the file's format is not one the runtime reads."""


class CorruptInputError(SourceError):
    """The input exists but is truncated, unreadable or malformed."""


class ModelError(EdgeError):
    """A model, its manifest or its files are unusable."""


class ManifestError(ModelError):
    """A model manifest is missing, malformed or inconsistent."""


class ModelIntegrityError(ModelError):
    """A model file's sha256 does not match its manifest: the file was changed or damaged."""


class BackendUnavailableError(ModelError):
    """The inference backend asked for is not installed on this machine."""
