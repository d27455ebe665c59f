"""A real mosquitto for tests and benchmarks: its own PKI, passwords, ACLs, port and persistence.

    with MosquittoBroker(workdir, devices=["dev-a", "dev-b"]) as broker:
        broker.port, broker.client_files("dev-a"), broker.kill9(), broker.restart()

Security model (docs/sync.md): TLS on a loopback listener with ``require_certificate true`` (a
client needs a certificate signed by our CA), *and* a username/password from a
``mosquitto_passwd`` file (``allow_anonymous false``). The ACL gives each device write access to
its own ``scanners/+/<username>/{results,feedback,status}`` and read access to its own
``scanners/+/<username>/receipts`` only, so a device can neither write another device's topics
(even with a valid certificate), nor read another device's receipts, nor forge a receipt; the
ingest user may read ``scanners/#`` and write ``scanners/+/+/receipts``. The certificates are made with the
``openssl`` command line (EC P-256, a few milliseconds each).

Run ``python -m tools.sync.broker DIR`` to start one by hand; it prints the port and file paths.

No mosquitto outlives its owner: on Linux it gets SIGTERM when the thread that started it goes (the
parent-death signal: also after a SIGKILL of the owner), every started broker is stopped at exit
(atexit), and the command turns SIGTERM into a clean exit that stops it.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

INGEST_USER = "ingest"
TOPIC_PREFIX = "scanners"


class BrokerError(RuntimeError):
    pass


def acl_text(prefix: str = TOPIC_PREFIX, ingest_user: str = INGEST_USER) -> str:
    """The mosquitto ACL (docs/sync.md). mosquitto allows what any matching line allows, so the
    device lines name each leaf: a ``readwrite .../%u/#`` would let a device forge its receipts."""
    return (
        "# the ingest reads every device's messages and writes every device's receipts\n"
        f"user {ingest_user}\n"
        f"topic read {prefix}/#\n"
        f"topic write {prefix}/+/+/receipts\n"
        "\n# every other user (%u = the authenticated username, not the client id it claims):\n"
        "# writes only its own results, feedback and status, reads only its own receipts\n"
        f"pattern write {prefix}/+/%u/results\n"
        f"pattern write {prefix}/+/%u/feedback\n"
        f"pattern write {prefix}/+/%u/status\n"
        f"pattern read {prefix}/+/%u/receipts\n"
    )


def find_mosquitto() -> str | None:
    """mosquitto lives in /usr/sbin on Debian, which is not on every user's PATH."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def find_mosquitto_passwd() -> str | None:
    return shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/sbin:/usr/bin")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Looked up here, not in the forked child: between fork and exec the child only makes the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
_running: set[MosquittoBroker] = set()  # started and not yet stopped: stopped at exit


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the thread that started it exits, however it
    exits (a SIGKILL of the test run included), so no mosquitto is left holding a port."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@atexit.register
def _stop_all() -> None:
    for broker in list(_running):
        broker.stop()


def _openssl(*args: str | Path) -> None:
    cmd = ["openssl", *(str(a) for a in args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BrokerError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


@dataclass(frozen=True)
class ClientFiles:
    username: str
    password: str
    password_file: Path
    ca: Path
    cert: Path
    key: Path


class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, and client certificates (CN = name)."""

    def __init__(self, folder: Path, ca_name: str = "scanner-edge test CA") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_key, self.ca_cert = folder / "ca.key", folder / "ca.crt"
        if not self.ca_cert.exists():
            self._key(self.ca_key)
            _openssl(
                "req",
                "-x509",
                "-new",
                "-key",
                self.ca_key,
                "-out",
                self.ca_cert,
                "-days",
                "30",
                "-subj",
                f"/CN={ca_name}",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            )

    @staticmethod
    def _key(path: Path) -> None:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
        path.chmod(0o600)

    def issue(self, name: str, *, server: bool = False) -> tuple[Path, Path]:
        """Certificate and key for ``name`` (a server certificate covers 127.0.0.1 and localhost)."""
        key, csr, crt = (self.folder / f"{name}{ext}" for ext in (".key", ".csr", ".crt"))
        if crt.exists():
            return crt, key
        self._key(key)
        _openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={name}")
        ext = self.folder / f"{name}.ext"
        usage = "serverAuth" if server else "clientAuth"
        lines = ["basicConstraints=CA:FALSE", f"extendedKeyUsage={usage}"]
        if server:
            lines.append("subjectAltName=IP:127.0.0.1,DNS:localhost")
        ext.write_text("\n".join(lines) + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            self.ca_cert,
            "-CAkey",
            self.ca_key,
            "-CAcreateserial",
            "-out",
            crt,
            "-days",
            "30",
            "-extfile",
            ext,
        )
        return crt, key


class MosquittoBroker:
    """mosquitto as a subprocess on a free loopback port; ``kill9()``/``restart()`` keep port and data."""

    def __init__(
        self,
        workdir: Path,
        devices: list[str],
        *,
        port: int | None = None,
        autosave_every_change: bool = True,
        extra_users: list[str] = (),  # type: ignore[assignment]
    ) -> None:
        exe, passwd = find_mosquitto(), find_mosquitto_passwd()
        if exe is None or passwd is None:
            raise BrokerError("mosquitto (and mosquitto_passwd) not installed: scripts/setup.sh --test")
        self.exe = exe
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log_file = workdir / "mosquitto.log"
        self.pki = Pki(workdir / "pki")
        self.server_cert, self.server_key = self.pki.issue("localhost", server=True)
        # A client certificate from a CA the broker does not trust: the broker must refuse it.
        self.rogue_pki = Pki(workdir / "rogue-pki", ca_name="rogue CA")
        self.users: dict[str, ClientFiles] = {}
        self.passwd_file = workdir / "passwd"
        self.passwd_file.unlink(missing_ok=True)
        for name in [*devices, INGEST_USER, *extra_users]:
            self._add_user(passwd, name)
        self.acl_file = workdir / "acl"
        self.acl_file.write_text(acl_text())
        self.conf_file = workdir / "mosquitto.conf"
        self.conf_file.write_text(self._conf(autosave_every_change))
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _add_user(self, passwd: str, name: str) -> None:
        password = secrets.token_urlsafe(12)
        flags = ["-b"] if self.passwd_file.exists() else ["-c", "-b"]
        proc = subprocess.run(
            [passwd, *flags, str(self.passwd_file), name, password], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise BrokerError(f"mosquitto_passwd failed for {name}: {proc.stderr.strip()}")
        pw_file = self.workdir / f"{name}.password"
        pw_file.write_text(password + "\n")
        pw_file.chmod(0o600)
        cert, key = self.pki.issue(name)
        self.users[name] = ClientFiles(name, password, pw_file, self.pki.ca_cert, cert, key)

    def _conf(self, autosave_every_change: bool) -> str:
        # autosave after every change: a kill -9 then loses at most what arrived since the last
        # save (mosquitto keeps its queue in memory otherwise, and saves only on a clean exit).
        autosave = "autosave_on_changes true\nautosave_interval 1\n" if autosave_every_change else ""
        # Started by root, mosquitto would switch to the "mosquitto" user, who cannot read our files.
        user = "user root\n" if os.geteuid() == 0 else ""
        return (
            f"{user}"
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"password_file {self.passwd_file}\n"
            f"acl_file {self.acl_file}\n"
            "persistence true\n"
            f"persistence_location {self.data_dir}/\n"
            f"{autosave}"
            "max_queued_messages 0\n"  # 0 = no limit: never drop a persistent session's queue
            "max_inflight_messages 0\n"
            "max_packet_size 1048576\n"
            f"log_dest file {self.log_file}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            f"listener {self.port} 127.0.0.1\n"
            f"cafile {self.pki.ca_cert}\n"
            f"certfile {self.server_cert}\n"
            f"keyfile {self.server_key}\n"
            "require_certificate true\n"
            "tls_version tlsv1.2\n"
        )

    def client_files(self, name: str) -> ClientFiles:
        return self.users[name]

    def rogue_client_files(self, name: str) -> ClientFiles:
        """Right password, but a certificate signed by a CA the broker does not trust."""
        good = self.users[name]
        cert, key = self.rogue_pki.issue(name)
        return ClientFiles(name, good.password, good.password_file, self.pki.ca_cert, cert, key)

    # -- process ------------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in the terminal is for the owner, who stops it in order
            preexec_fn=_die_with_parent,
        )
        _running.add(self)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise BrokerError(
                    f"mosquitto exited with {self.proc.returncode}: {err.strip()} {self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.kill9()
        raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout_s} s")

    def kill9(self) -> None:
        _running.discard(self)
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        """kill -9, then start again on the same port with the same persistence folder."""
        self.kill9()
        self.restarts += 1
        deadline = time.monotonic() + 10.0
        while True:  # the port may linger a moment after the kill
            try:
                self.start()
                return
            except BrokerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        _running.discard(self)
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", type=Path)
    p.add_argument("--device", action="append", default=[], help="device user (repeatable)")
    p.add_argument("--port", type=int)
    args = p.parse_args(argv)
    broker = MosquittoBroker(args.workdir, args.device or ["dev-1"], port=args.port)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (kill, systemd, a test's cleanup) stops mosquitto as Ctrl-C does, via the finally.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    broker.start()
    pid = broker.proc.pid if broker.proc else "?"
    print(
        f"mosquitto (pid {pid}) on 127.0.0.1:{broker.port} (config {broker.conf_file});"
        " Ctrl-C or SIGTERM stops it",
        flush=True,
    )
    for name, f in broker.users.items():
        print(f"  {name}: password file {f.password_file}, cert {f.cert}, key {f.key}, ca {f.ca}", flush=True)
    try:
        while broker.proc is not None and broker.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
