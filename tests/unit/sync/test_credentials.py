"""Credential files and what a TLS failure means (the message names what failed and the file)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.sync.credentials import describe_tls_error, read_password


def _ssl_error(reason: str) -> ssl.SSLError:
    err = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()} (_ssl.c:2580)")
    err.reason = reason
    err.library = "SSL"
    return err


def test_password_file_first_line(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\nignored\n")
    assert read_password(tmp_path / "pw") == "s3cret"
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        read_password(tmp_path / "empty")
    with pytest.raises(ConfigError, match="cannot read"):
        read_password(tmp_path / "missing")


def test_tls_alerts_name_the_client_certificate() -> None:
    cert, ca = Path("/etc/se/device.crt"), Path("/etc/se/ca.crt")
    what = describe_tls_error(_ssl_error("TLSV1_ALERT_UNKNOWN_CA"), ca=ca, cert=cert)
    assert what == f"the broker does not trust our client certificate (alert: unknown CA) ({cert})"
    what = describe_tls_error(_ssl_error("SSLV3_ALERT_BAD_CERTIFICATE"), ca=ca, cert=cert)
    assert "refused our client certificate" in what and str(cert) in what
    assert "MQTT" not in what
    what = describe_tls_error(_ssl_error("WRONG_VERSION_NUMBER"), ca=ca, cert=None)
    assert "does not speak TLS" in what
    assert describe_tls_error(_ssl_error("SOMETHING_NEW"), ca=ca, cert=cert).startswith("TLS error: ")


def test_server_certificate_and_unanswered_close() -> None:
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "self-signed certificate in certificate chain"
    err.reason = "CERTIFICATE_VERIFY_FAILED"
    what = describe_tls_error(err, ca=Path("/etc/se/ca.crt"), cert=None)
    assert what == (
        "the broker's certificate did not verify against the CA in /etc/se/ca.crt:"
        " self-signed certificate in certificate chain"
    )
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    assert "require a client certificate" in describe_tls_error(eof, ca=None, cert=None)
    assert "/d.crt" in describe_tls_error(eof, ca=None, cert=Path("/d.crt"))


def test_a_reset_before_any_answer_is_reported_like_an_unanswered_close() -> None:
    what = describe_tls_error(
        ConnectionResetError(104, "Connection reset by peer"), ca=None, cert=Path("/d.crt")
    )
    assert (
        what
        == "the broker closed the TLS connection unanswered: did it refuse our client certificate /d.crt?"
    )
