"""The systemd unit: what the service writes lies inside what the sandbox lets it write, and a stuck
runtime is restarted by systemd's watchdog."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from edge.runtime.health import Health, Watchdog
from edge.runtime.notify import Notify
from edge.sources.probe import EMULATOR_START_S
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


def _seconds(span: str) -> float:
    """A systemd time span as this unit writes them ("30s", "2min", "120")."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|sec|min|)", span.strip())
    assert m, f"{span!r}: not a time span this test reads"
    return float(m[1]) * (60 if m[2] == "min" else 1)


def test_systemd_restarts_the_service_when_the_runtime_stops_feeding_its_watchdog() -> None:
    s = _unit()["Service"]
    assert s["Type"] == "notify", "started once the runtime says READY=1"
    # Only the runtime's own process may speak for it: ExecStart runs it directly, no shell between.
    assert s["NotifyAccess"] == "main"
    assert Path(s["ExecStart"].split()[0]).name == "edge"
    watchdog = Notify("@unit", watchdog_usec=int(_seconds(s["WatchdogSec"]) * 1e6))
    w = Watchdog(Health(), watchdog)
    assert w.ping_s is not None and w.ping_s >= 5 * w.check_s, "pings at half the interval, checked often"
    assert s["Restart"] == "on-failure", "a watchdog timeout counts as a failure"
    # The watchdog's signal lets the runtime write its report naming the stuck stage; a stop
    # that hangs is killed after TimeoutStopSec.
    assert s["WatchdogSignal"] == "SIGTERM" and float(s["TimeoutStopSec"]) >= 2
    assert _seconds(s["TimeoutStartSec"]) > EMULATOR_START_S, "READY=1 comes after the source opens"


def test_the_runtime_is_scheduled_above_ordinary_jobs_but_not_real_time() -> None:
    s = _unit()["Service"]
    assert -20 <= int(s["Nice"]) < 0, "before jobs at the default nice 0 (docs/performance.md)"
    # A real-time policy would let one runaway thread starve the box, the watchdog's pings with it.
    assert s.get("CPUSchedulingPolicy", "other") in ("other", "batch")
    assert s["IOSchedulingClass"] == "best-effort" and int(s["IOSchedulingPriority"]) < 4
