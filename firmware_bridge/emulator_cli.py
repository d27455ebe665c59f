"""Command line of the virtual probe: ``python -m firmware_bridge.emulator`` and ``edge emulate``.

Every number is checked by its argparse type (the option named, exit status 2): fps > 0 and at most
120, probabilities within 0..1, times >= 0; a scenario file that does not parse or holds a bad value
is refused naming the file, the segment and the field.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from firmware_bridge.emulator import VirtualProbe, check_fps
from firmware_bridge.emulator_faults import Faults, non_negative, probability
from firmware_bridge.emulator_pty import PtyProbe
from firmware_bridge.phantom import PRESETS, Scenario, single, tour


def _arg(check: Callable[[str, float], float]) -> Callable[[str], float]:
    """An argparse type: a float that passes ``check`` (argparse names the option, exit status 2)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        try:
            return check("value", value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def main(argv: list[str] | None = None, prog: str = "python -m firmware_bridge.emulator") -> int:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Virtual probe on a pty (firmware_bridge/EMULATOR.md).",
    )
    ap.add_argument("--preset", default="lung", choices=list(PRESETS))
    ap.add_argument("--fps", type=_arg(check_fps), default=30.0, help="frames per second, > 0 and <= 120")
    ap.add_argument("--scenario", help="scenario JSON file (docs/phantom.md); overrides --preset")
    ap.add_argument(
        "--steady", action="store_true", help="one unchanging view of the preset instead of its tour"
    )
    ap.add_argument("--truth", help="append per-frame truth as JSON lines to this file")
    ap.add_argument("--link", help="keep this symlink pointing at the current pty")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parent", type=int, help="exit when this process is gone (the runtime that started us)")
    seconds = _arg(non_negative)
    ap.add_argument("--disconnect-at", type=seconds, help="cable pull: close the pty this many s after START")
    ap.add_argument("--reconnect-after", type=seconds, default=1.0, help="... and reopen it this much later")
    ap.add_argument(
        "--drop-chunk-p", type=_arg(probability), default=0.0, help="probability of dropping a chunk"
    )
    ap.add_argument("--stall-at", type=seconds, help="firmware hang: neither read nor write from this s ...")
    ap.add_argument("--stall-s", type=seconds, default=0.0, help="... for this long")
    ap.add_argument("--corrupt-bytes-per-s", type=seconds, default=0.0, help="noise: bytes XOR-ed per second")
    args = ap.parse_args(argv)
    faults = Faults(
        corrupt_bytes_per_s=args.corrupt_bytes_per_s,
        drop_chunk_p=args.drop_chunk_p,
        stall_at_s=args.stall_at,
        stall_s=args.stall_s,
        disconnect_at_s=args.disconnect_at,
        reconnect_after_s=args.reconnect_after,
        seed=args.seed,
    )
    if args.scenario:
        try:
            scenario = Scenario.from_json(Path(args.scenario).read_text())
        except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
            ap.error(f"--scenario {args.scenario}: {exc}")
    elif args.steady:
        scenario = single(args.preset, duration_s=24 * 3600.0)
    else:
        scenario = tour(args.preset)  # loops: the probe plays a scenario again when it ends
    probe = VirtualProbe(scenario, fps=args.fps, seed=args.seed, truth_path=args.truth, faults=faults)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    pty = PtyProbe(probe, link_path=args.link)
    print(pty.start(), flush=True)
    if args.link:
        print(args.link, flush=True)
    while not done.wait(0.2):
        if args.parent and os.getppid() != args.parent:
            break  # the runtime that started us died (even by SIGKILL): do not stream to nobody
    pty.stop()
    probe.close()
    return 0
