"""MQTT client credentials from files: the password file and the verifying TLS context.

Shared by the uplink, the reference ingest and the test broker's clients; and what a TLS failure means.
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


# OpenSSL's reason for a TLS failure -> what it means for a device talking to its broker.
_TLS_REASONS = {
    "TLSV1_ALERT_UNKNOWN_CA": "the broker does not trust our client certificate (alert: unknown CA)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker refused our client certificate (alert: bad certificate)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the broker cannot verify our client certificate (alert: unknown)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the broker says our client certificate has expired",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "the broker says our client certificate is revoked",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the broker requires a client certificate",
    "TLSV1_ALERT_ACCESS_DENIED": "the broker denied access at the TLS layer",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "no TLS version or cipher in common with the broker",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common with the broker",
    "WRONG_VERSION_NUMBER": "the port does not speak TLS (a plain MQTT port?)",
}


def describe_tls_error(exc: OSError, *, ca: Path | None, cert: Path | None) -> str:
    """What failed in a TLS handshake, naming the file to look at (not "the broker does not take
    MQTT v5": a TLS failure is never about the MQTT version)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or str(exc)
        return f"the broker's certificate did not verify against the CA in {ca}: {why}"
    if isinstance(exc, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)):  # closed, no alert
        if cert is None:
            return "the broker closed the TLS connection unanswered: does it require a client certificate?"
        return (
            f"the broker closed the TLS connection unanswered: did it refuse our client certificate {cert}?"
        )
    reason = getattr(exc, "reason", None)
    what = _TLS_REASONS.get(str(reason)) if reason else None
    if what is None:
        return f"TLS error: {exc}"
    if "client certificate" in what and cert is not None:
        what += f" ({cert})"
    return what
