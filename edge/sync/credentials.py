"""MQTT client credentials from files: the password file and the verifying TLS context.

Shared by the uplink, the reference ingest and the test broker's clients.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from edge.errors import ConfigError


def read_password(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read uplink password file: {exc.strerror or exc}") from exc
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"{path}: uplink password file is empty (the first line is the password)")
    return lines[0]


def tls_context(ca: Path, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """Verifying TLS context (broker certificate against ``ca``, hostname checked)."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        if cert is not None and key is not None:
            ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        where = f"{ca}, {cert}, {key}" if cert else str(ca)
        raise ConfigError(f"uplink TLS files ({where}) unusable: {exc}") from exc
    return ctx
