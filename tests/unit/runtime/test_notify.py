"""sd_notify against a real AF_UNIX datagram socket standing in for systemd's."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.runtime.notify import Notify


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A socket path must fit in 108 bytes; pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="sd-", dir="/tmp") as d:
        yield Path(d)


def _bound(address: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + address[1:] if address.startswith("@") else address)
    s.settimeout(5.0)
    return s


def test_outside_systemd_every_call_is_a_no_op() -> None:
    n = Notify.from_env({})
    assert not n.enabled and n.watchdog_s is None
    assert n.ready("running") is False and n.watchdog() is False and n.stopping() is False


def test_messages_reach_a_socket_named_by_path(short_dir: Path) -> None:
    path = str(short_dir / "notify")
    with _bound(path) as sd:
        n = Notify.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
        assert n.enabled and n.watchdog_s == 30.0
        assert n.ready("loading\nmodels")
        assert sd.recv(4096) == b"READY=1\nSTATUS=loading models", "one line per field"
        assert n.watchdog() and sd.recv(4096) == b"WATCHDOG=1"
        assert n.stopping() and sd.recv(4096) == b"STOPPING=1"
        n.close()


def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"@scanner-edge-test-{os.getpid()}"
    with _bound(name) as sd:
        n = Notify.from_env({"NOTIFY_SOCKET": name})
        assert n.status("STUCK: inference 12 s")
        assert sd.recv(4096) == b"STATUS=STUCK: inference 12 s"
        n.close()


def test_the_watchdog_interval_applies_only_to_the_process_it_names(caplog: pytest.LogCaptureFixture) -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "2000000"}
    assert Notify.from_env({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 2.0
    assert Notify.from_env({**env, "WATCHDOG_PID": "1"}).watchdog_s is None
    with caplog.at_level(logging.WARNING):
        assert Notify.from_env({**env, "WATCHDOG_USEC": "soon"}).watchdog_s is None
    assert "WATCHDOG_USEC='soon'" in caplog.text


def test_an_unsupported_socket_kind_is_said_and_not_used(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        n = Notify.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled and "NOTIFY_SOCKET=vsock:2:1234" in caplog.text


def test_a_socket_that_is_gone_is_logged_once_never_raised_and_used_again_when_back(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(short_dir / "notify")
    n = Notify(path)
    with caplog.at_level(logging.WARNING):
        assert n.watchdog() is False
        assert n.watchdog() is False
    assert caplog.text.count(f"sd_notify to NOTIFY_SOCKET={path} failed") == 1
    with _bound(path) as sd:  # systemd back (re-executed, say)
        assert n.watchdog() and sd.recv(4096) == b"WATCHDOG=1"
    n.close()
