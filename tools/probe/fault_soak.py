"""Fault soak: the real runtime on the virtual probe over a pty, with random link faults, for a given time.

    python -m tools.probe.fault_soak --seconds 1800              # the acceptance soak: 30 minutes
    python -m tools.probe.fault_soak --seconds 20 --every 1 3    # a short one (the fault-suite test)

The virtual probe runs in this process on a pty behind a stable symlink (as a udev by-id name) and
``edge run --source serial://LINK --headless`` runs as a subprocess with its report, log, run folder
and outbox (``keep = "all"``, so every result is kept and can be counted) in a temporary folder. Every
few seconds (``--every MIN MAX``) one fault, drawn at random, hits the link:

- ``stall``: the firmware hangs 0.5-6 s (beyond 3 s the host declares the link lost and reconnects);
- ``pull``: cable pulled, the pty closed and a new one opened 0.2-3 s later (the host must reopen);
- ``noise``: 1-4096 random bytes on the wire between two packets;
- ``corrupt``: the next 1-10 frames get a few bytes flipped each.

Faults do not overlap (a stall or pull is over before the next wait starts). After ``--seconds`` the
link is left alone for ``--settle`` seconds, then the runtime gets SIGTERM and the checks run: exit
status 0; the report says ``exit: stopped`` with no error, failure or source errors; no thread lost
(the link's reader never died or errored, the watchdog saw no stage stuck, no stage stopped, and no
traceback, "did not stop" or dead thread in the log); the outbox passes ``PRAGMA integrity_check``
and every payload is JSON valid against docs/result.schema.json; the results file parses line by
line; and the link was right at the end (report: connected; results kept and frames delivered in
the last seconds before SIGTERM).

Prints the counts (faults per kind, frames, reconnects, results kept) and the checks as JSON; exit
status 0 when every check passed, 1 otherwise. Needs the test set (jsonschema).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from firmware_bridge.emulator import VirtualProbe
from firmware_bridge.emulator_faults import Faults
from firmware_bridge.emulator_pty import PtyProbe
from firmware_bridge.phantom import tour

KINDS = ("stall", "pull", "noise", "corrupt")
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "result.schema.json"
START_TIMEOUT_S = 120.0  # model loading and warm-up on a busy box
STOP_TIMEOUT_S = 60.0
LAST_S = 5.0  # "frames flowing at the end": results kept within this many seconds before SIGTERM
BAD_LOG_LINES = ("Traceback", "did not stop", "thread probe-", "CRITICAL")

CONFIG = """\
[source]
url = "serial://{link}"

[display]
sinks = ["null"]

[output]
dir = "{dir}/runs"

[outbox]
path = "{dir}/outbox.sqlite3"
keep = "all"

[deid]
key_file = "{dir}/deid.key"
"""


def _wait(pred: Any, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        if proc.poll() is not None:
            return bool(pred())
        time.sleep(0.05)
    return bool(pred())


def _inject(
    kind: str, rng: random.Random, probe: VirtualProbe, pty: PtyProbe, details: Counter[str]
) -> float:
    """Apply one fault; returns how long it lasts (the next wait starts after it)."""
    inj = probe.injector
    if kind == "stall":
        seconds = rng.uniform(0.5, 6.0)
        inj.stall_now(seconds)
        details["stall_ms_total"] += round(seconds * 1000)
        details["stalls_beyond_link_loss"] += seconds > 3.0
        return seconds
    if kind == "pull":
        after = rng.uniform(0.2, 3.0)
        opens = pty.opens
        inj.pull_now(after)
        deadline = time.monotonic() + after + 5.0
        while pty.opens == opens and time.monotonic() < deadline:
            time.sleep(0.02)
        return 0.0
    if kind == "noise":
        n = rng.randint(1, 4096)
        inj.noise_now(n)
        details["noise_bytes"] += n
        return 0.0
    frames = rng.randint(1, 10)
    inj.corrupt_frames_now(frames)
    details["frames_corrupted_asked"] += frames
    return 0.0


def _outbox_checks(path: Path) -> dict[str, Any]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        integrity = [r[0] for r in con.execute("PRAGMA integrity_check")]
        kept = invalid = 0
        first_error = None
        for (payload,) in con.execute("SELECT payload FROM items"):
            kept += 1
            try:
                validator.validate(json.loads(bytes(payload)))
            except (ValueError, jsonschema.ValidationError) as exc:
                invalid += 1
                first_error = first_error or f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        con.close()
    return {
        "integrity": integrity,
        "kept": kept,
        "invalid": invalid,
        "first_error": first_error,
    }


def _recent_results(path: Path, since_ns: int) -> int:
    if not path.exists():
        return 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT COUNT(*) FROM items WHERE created_ns >= ?", (since_ns,)).fetchone()[0])
    finally:
        con.close()


def soak(
    seconds: float,
    *,
    every: tuple[float, float] = (3.0, 8.0),
    settle_s: float = 10.0,
    fps: float = 30.0,
    seed: int = 0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="fault-soak-")
        workdir = Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    link, cfg, report_path = workdir / "probe", workdir / "soak.toml", workdir / "report.json"
    log_path, outbox = workdir / "run.log", workdir / "outbox.sqlite3"
    cfg.write_text(CONFIG.format(link=link, dir=workdir))
    probe = VirtualProbe(tour("lung"), fps=fps, seed=seed, faults=Faults(seed=seed))
    pty = PtyProbe(probe, link_path=str(link))
    pty.start()
    faults: Counter[str] = Counter()
    details: Counter[str] = Counter()
    out: dict[str, Any] = {"seconds": seconds, "every_s": list(every), "fps": fps, "seed": seed}
    cmd = [
        sys.executable,
        "-m",
        "edge",
        "run",
        "--config",
        str(cfg),
        "--headless",
        "--report",
        str(report_path),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        started = _wait(lambda: probe.streaming, START_TIMEOUT_S, proc)
        t_start = time.monotonic()
        t_end = t_start + seconds
        while started and proc.poll() is None and time.monotonic() < t_end:
            time.sleep(min(rng.uniform(*every), max(0.0, t_end - time.monotonic())))
            if time.monotonic() >= t_end or proc.poll() is not None:
                break
            kind = rng.choice(KINDS)
            faults[kind] += 1
            time.sleep(_inject(kind, rng, probe, pty, details))
        time.sleep(settle_s if proc.poll() is None else 0.0)
        last_since = time.time_ns() - int(LAST_S * 1e9)
        out["results_in_last_s"] = _recent_results(outbox, last_since)
        skipped_before = probe.stats["frames_skipped"]
        sent_before = probe.stats["frames_sent"]
        time.sleep(1.0)
        out["probe_streaming_at_end"] = probe.streaming
        out["probe_frames_sent_last_s"] = probe.stats["frames_sent"] - sent_before
        out["probe_frames_skipped_last_s"] = probe.stats["frames_skipped"] - skipped_before
        alive_at_end = proc.poll() is None
        if alive_at_end:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            out["killed_after_sigterm"] = True
        out["duration_s"] = round(time.monotonic() - t_start, 1) if started else 0.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pty.stop()
        probe.close()
    out["faults"] = dict(sorted(faults.items()))
    out["fault_details"] = {k: round(v, 1) if isinstance(v, float) else v for k, v in sorted(details.items())}
    out["probe"] = {k: int(v) for k, v in sorted((probe.stats + probe.injector.counts).items())}
    out["pty_opens"] = pty.opens
    out["exit_code"] = rc
    checks = _checks(out, started, alive_at_end, rc, report_path, log_path, outbox)
    out["checks"] = checks
    out["failed"] = sorted(k for k, ok in checks.items() if not ok)
    out["ok"] = not out["failed"]
    out["workdir"] = None if tmp is not None else str(workdir)
    if tmp is not None:
        if not out["ok"]:  # keep the evidence of a failed soak
            kept = Path(tempfile.mkdtemp(prefix="fault-soak-failed-"))
            for name in ("report.json", "run.log", "soak.toml"):
                if (workdir / name).exists():
                    (kept / name).write_bytes((workdir / name).read_bytes())
            out["evidence"] = str(kept)
        tmp.cleanup()
    return out


def _checks(
    out: dict[str, Any],
    started: bool,
    alive_at_end: bool,
    rc: int,
    report_path: Path,
    log_path: Path,
    outbox: Path,
) -> dict[str, bool]:
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    bad = [line for line in log_text.splitlines() if any(b in line for b in BAD_LOG_LINES)]
    out["log_problems"] = bad[:20]
    report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.exists() else {}
    counters = report.get("counters", {})
    extra = report.get("source", {}).get("extra", {})
    link = extra.get("link", {})
    out["report_exit"] = report.get("exit")
    out["report_error"] = report.get("error")
    out["frames"] = {
        "probe_sent": out["probe"].get("frames_sent", 0),
        "link_delivered": link.get("frames_delivered"),
        "link_dropped": link.get("frames_dropped"),
        "acquired": counters.get("acquired"),
        "inferred": counters.get("inferred"),
        "displayed": counters.get("displayed"),
    }
    out["link"] = {
        k: link.get(k)
        for k in (
            "state",
            "reconnects",
            "reader_restarts",
            "reader_errors",
            "command_resends",
            "command_retries",
        )
    }
    out["link"]["decode_errors"] = sum((link.get("decode_errors") or {}).values())
    stages = report.get("health", {}).get("stages", {})
    out["watchdog_stuck"] = report.get("watchdog", {}).get("stuck")
    out["stages_stopped"] = {name: st.get("stopped") for name, st in stages.items() if st.get("stopped")}
    out["disconnects"] = extra.get("disconnects")
    out["reconnects"] = link.get("reconnects")
    kept: dict[str, Any] = _outbox_checks(outbox) if outbox.exists() else {}
    out["outbox"] = {k: kept.get(k) for k in ("integrity", "kept", "invalid", "first_error")}
    out["results_kept"] = kept.get("kept", 0)
    stored = report.get("outbox", {}).get("puts", {})
    results_file = report_path.parent / (report.get("outputs", {}).get("results") or "missing")
    lines = results_file.read_text().splitlines() if results_file.is_file() else []
    parsed = 0
    for line in lines:
        try:
            json.loads(line)
            parsed += 1
        except ValueError:
            pass
    out["results_jsonl"] = {"lines": len(lines), "parsed": parsed}
    return {
        "runtime_started_streaming": started,
        "runtime_alive_until_sigterm": alive_at_end,
        "exit_code_0": rc == 0,
        "report_exit_stopped": report.get("exit") == "stopped"
        and report.get("error") is None
        and report.get("failure") is None,
        "no_source_errors": counters.get("source_errors") == 0,
        "no_thread_lost": not bad
        and not link.get("reader_restarts")
        and not link.get("reader_errors")
        and not report.get("watchdog", {}).get("stuck")
        and all(st.get("stopped") is None for st in stages.values()),
        "outbox_integrity_ok": kept.get("integrity") == ["ok"],
        "every_kept_result_valid": bool(kept) and kept.get("invalid") == 0 and kept.get("kept", 0) > 0,
        "outbox_holds_every_stored_result": kept.get("kept")
        == sum(v for k, v in stored.items() if k.startswith("stored")),
        "results_jsonl_intact": parsed == len(lines) == counters.get("results"),
        "link_connected_at_end": link.get("state") == "connected" and extra.get("link_state") == "connected",
        "frames_flowing_at_end": out["results_in_last_s"] > 0 and out["probe_streaming_at_end"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1800.0, help="how long faults are injected")
    ap.add_argument("--every", type=float, nargs=2, default=(3.0, 8.0), metavar=("MIN", "MAX"))
    ap.add_argument("--settle", type=float, default=10.0, help="quiet seconds before SIGTERM")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(2), "little"))
    ap.add_argument("--workdir", type=Path, help="keep everything here instead of a temporary folder")
    args = ap.parse_args(argv)
    if not 0 < args.every[0] <= args.every[1]:
        ap.error(f"--every MIN MAX: need 0 < MIN <= MAX, got {args.every[0]:g} {args.every[1]:g}")
    result = soak(
        args.seconds,
        every=(args.every[0], args.every[1]),
        settle_s=args.settle,
        fps=args.fps,
        seed=args.seed,
        workdir=args.workdir,
    )
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
