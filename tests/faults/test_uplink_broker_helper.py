"""The test broker helper (tools.sync.broker) leaves no mosquitto behind when its process is
terminated: the command stops it on SIGTERM, and a process using it as a library that is killed
outright takes mosquitto with it (the parent-death signal). Real processes and signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.polling import wait_for
from tools.sync.broker import find_mosquitto, find_mosquitto_passwd

pytestmark = [
    pytest.mark.skipif(
        find_mosquitto() is None or find_mosquitto_passwd() is None, reason="mosquitto is not installed"
    ),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever reaps orphans here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _start(args: list[str]) -> tuple[subprocess.Popen[str], int, int]:
    """Start a process that prints "mosquitto (pid P) on 127.0.0.1:PORT"; (process, P, PORT)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the helper prints it once mosquitto listens (or exits: "")
    if "mosquitto (pid" not in line:
        proc.kill()
        raise AssertionError(f"no broker started: {line!r} {proc.communicate(timeout=10)}")
    pid = int(line.split("(pid ", 1)[1].split(")", 1)[0])
    port = int(line.split("127.0.0.1:", 1)[1].split()[0])
    assert _running(pid) and _listening(port)
    return proc, pid, port


def _gone(proc: subprocess.Popen[str], pid: int, port: int) -> None:
    proc.wait(timeout=30)
    wait_for(lambda: not _running(pid), 15, f"mosquitto (pid {pid}) to exit")
    wait_for(lambda: not _listening(port), 15, f"port {port} to close")


def test_the_command_stops_mosquitto_on_sigterm(tmp_path: Path) -> None:
    proc, pid, port = _start(["-m", "tools.sync.broker", str(tmp_path / "b"), "--device", "dev-1"])
    try:
        proc.send_signal(signal.SIGTERM)
        _gone(proc, pid, port)
        assert proc.returncode == 128 + signal.SIGTERM  # a clean exit through the finally
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


LIBRARY_USER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tools.sync.broker import MosquittoBroker
    broker = MosquittoBroker(Path(sys.argv[1]), ["dev-1"])
    broker.start()
    print(f"mosquitto (pid {broker.proc.pid}) on 127.0.0.1:{broker.port}", flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_process_using_the_helper_takes_mosquitto_with_it(tmp_path: Path, sig: signal.Signals) -> None:
    # No handler in this process: SIGTERM kills it as SIGKILL does, and neither runs atexit.
    proc, pid, port = _start(["-c", LIBRARY_USER, str(tmp_path / "b")])
    try:
        proc.send_signal(sig)
        _gone(proc, pid, port)
        assert proc.returncode == -sig
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
