"""Open a Source by URL through a registry of schemes that users can extend.

Like pyserial's ``serial_for_url``: ``open_source("video:///clips/a.mp4?loop=1")`` finds the
factory registered for ``video`` and hands it the parsed URL. A plugin adds a scheme with
``register_scheme("myprobe", factory)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from edge.errors import SourceError, UnsupportedSourceError
from edge.sources.base import Source


@dataclass(frozen=True, slots=True)
class SourceURL:
    """A parsed source URL: ``scheme://netloc/path?key=value``."""

    raw: str
    scheme: str
    netloc: str
    path: str
    query: dict[str, str]

    def flag(self, key: str, default: bool) -> bool:
        value = self.query.get(key)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise SourceError(f"{self.raw}: query parameter {key}={value!r} must be 0 or 1")

    def number(self, key: str, default: float | None) -> float | None:
        value = self.query.get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError as exc:
            raise SourceError(f"{self.raw}: query parameter {key}={value!r} is not a number") from exc


SourceFactory = Callable[[SourceURL], Source]
_REGISTRY: dict[str, SourceFactory] = {}


def register_scheme(scheme: str, factory: SourceFactory, *, replace: bool = False) -> None:
    """Make ``scheme://...`` URLs open through ``factory``."""
    key = scheme.lower()
    if key in _REGISTRY and not replace:
        raise ValueError(f"source scheme {scheme!r} is already registered")
    _REGISTRY[key] = factory


def registered_schemes() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def parse_source_url(url: str) -> SourceURL:
    parts = urlsplit(url)
    if not parts.scheme:
        raise UnsupportedSourceError(
            f"{url!r} is not a source URL: expected scheme://..., one of {', '.join(registered_schemes())}"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return SourceURL(url, parts.scheme.lower(), unquote(parts.netloc), unquote(parts.path), query)


def open_source(url: str) -> Source:
    """Build (but do not open) the Source for ``url``."""
    parsed = parse_source_url(url)
    _load_builtin()
    factory = _REGISTRY.get(parsed.scheme)
    if factory is None:
        raise UnsupportedSourceError(
            f"{url}: unknown source scheme {parsed.scheme!r}; known: {', '.join(registered_schemes())}"
        )
    return factory(parsed)


_builtin_loaded = False


def _load_builtin() -> None:
    # Imported lazily so that `import edge.sources.registry` stays cheap and cycle-free.
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True
    from edge.sources import builtin

    builtin.register_all()
