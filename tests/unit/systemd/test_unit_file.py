"""The systemd unit: what the service writes lies inside what the sandbox lets it write."""

from __future__ import annotations

import configparser
from pathlib import Path

from tests.support.paths import REPO

UNIT = REPO / "systemd" / "scanner-edge.service"


def _unit() -> configparser.RawConfigParser:
    p = configparser.RawConfigParser(strict=False, delimiters=("=",))
    p.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    p.read_string(UNIT.read_text())
    return p


def test_the_service_writes_only_where_the_sandbox_allows() -> None:
    s = _unit()["Service"]
    writable = [Path(x) for x in s["ReadWritePaths"].split()]
    assert s["ProtectSystem"] == "strict"
    work = Path(s["WorkingDirectory"])
    assert any(work.is_relative_to(w) for w in writable), "runs/ and the outbox live under the work dir"
    env = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith("Environment=")]
    key = Path(next(e.split("=", 1)[1] for e in env if e.startswith("EDGE_DEID_KEY=")))
    assert any(key.is_relative_to(w) for w in writable), "the device key is made on first start"
    assert s["ExecStart"].split()[1:3] == ["run", "--config"]
    assert s["KillSignal"] == "SIGTERM" and float(s["TimeoutStopSec"]) >= 2
