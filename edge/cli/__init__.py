"""The ``edge`` command line: one module per command family, each adding its own parser."""

from __future__ import annotations

import argparse
import logging
import sys

from edge import __version__
from edge.cli import bench, deid, emulate, models, plugins, run, sync
from edge.errors import EdgeError

log = logging.getLogger("edge")

DESCRIPTION = """\
Scanner edge runtime: reads frames from a probe, a video or DICOM, runs image-quality and
detection models on them, and draws the results over the live image.

Start here:
  edge run                       the embedded default: the virtual probe (a simulated lung scan
                                 over a serial link) and the bundled quality model, in a window
                                 (or, with no display, an overlay video under runs/)
  edge run --headless --max-frames 300 --report report.json
  edge run --source dicom:///path/to/study --config my.toml
  edge bench                     measure the runtime against a naive loop on this machine
  edge emulate --preset lung     a virtual probe on a pseudo-terminal, for serial:///dev/pts/N
  edge models list               the bundled models and whether their files verify
  edge sync --status             the outbox: queued, oldest, last success (docs/sync.md)
  edge sync --once --config F    send everything queued to the MQTT broker, then exit
  edge ingest --db F --host H    reference ingest: results arriving at the broker, into SQLite
  edge deid IN OUT               de-identify DICOM files (PS3.15 Basic Profile, pixel blackout)

Sources: probe+emu://?preset=lung  serial:///dev/ttyACM0  video:///clip.mp4[?loop=1&realtime=0]
         dicom:///file_or_folder  uvc://0
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulate"]:  # all its options belong to the emulator: hand them over untouched
        return emulate.run(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    logging.basicConfig(
        level=getattr(args, "log_level", None) or "INFO",
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args))
    except EdgeError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"edge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run.add_parser(sub)
    bench.add_parser(sub)
    emulate.add_parser(sub)
    models.add_parser(sub)
    sync.add_parsers(sub)
    deid.add_parser(sub)
    plugins.add_parsers(sub)  # other packages' families: edge ingest (edge_ingest)
    return p
