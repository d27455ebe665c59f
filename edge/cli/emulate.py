"""``edge emulate``: the virtual probe on a pseudo-terminal (firmware_bridge's own command line).

Every option belongs to the emulator, so ``main`` hands the arguments over before argparse sees them;
the parser here only lists the command in ``edge --help``.
"""

from __future__ import annotations

from typing import Any


def add_parser(sub: Any) -> None:
    e = sub.add_parser(
        "emulate",
        help="run the virtual probe on a pty (prints its path); same as python -m firmware_bridge.emulator",
        add_help=False,
    )
    e.set_defaults(func=lambda _args: 0)  # handled in main() before parsing


def run(argv: list[str]) -> int:
    from firmware_bridge.emulator_cli import main as emulator_main

    return emulator_main(argv, prog="edge emulate")
