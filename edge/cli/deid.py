"""``edge deid IN OUT``: de-identify DICOM files from the command line (one line per file, then totals)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

DESCRIPTION = """\
De-identify DICOM files under the PS3.15 Basic Application Level Confidentiality Profile:
header attributes of Table E.1-1 at every sequence depth, UIDs remapped with the device key
under 2.25, dates shifted per patient (or removed), private attributes removed unless
allow-listed, ultrasound pixels outside the imaging regions blacked out. An image that may
carry burned-in text and cannot be cleaned is refused and not written (fail closed).

IN is a file or a folder; OUT is a folder (outputs named <new SOP Instance UID>.dcm), or a
.dcm path when IN is one file. Exit status: 0 all written, 1 some refused or failed, 2 usage.
"""


def add_parser(sub: Any) -> None:
    d = sub.add_parser(
        "deid",
        help="de-identify DICOM files (PS3.15 Basic Profile, keyed UIDs, pixel blackout)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("input", type=Path, metavar="IN", help="DICOM file or folder")
    d.add_argument("output", type=Path, metavar="OUT", help="output folder (or .dcm file for one input file)")
    d.add_argument("--config", type=Path, help="TOML config whose [deid] section gives the defaults")
    d.add_argument("--key", type=Path, metavar="FILE", help="device key file (created, mode 0600, if absent)")
    d.add_argument("--dates", choices=["shift", "remove"], help="shift per patient (default) or remove")
    d.add_argument(
        "--keep-private",
        action="append",
        default=[],
        metavar="GGGG,EE,CREATOR",
        help="keep this private attribute, e.g. '0019,0C,SIEMENS MR HEADER' (repeatable)",
    )
    d.add_argument("--recursive", "-r", action="store_true", help="also de-identify files in subfolders")
    d.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    d.set_defaults(func=cmd_deid)


def cmd_deid(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.deid.files import deidentify_paths
    from edge.deid.header import DeidOptions, parse_private_allow_list
    from edge.deid.keys import default_key_path, load_key

    cfg = load_config(args.config).deid
    key_path = args.key or cfg.key_file or default_key_path()
    options = DeidOptions(
        key=load_key(key_path),
        dates=args.dates or cfg.dates,
        keep_private=parse_private_allow_list([*cfg.keep_private, *args.keep_private]),
    )
    totals: Counter[str] = Counter()
    for report in deidentify_paths(
        args.input, args.output, options, recursive=args.recursive, probe_rects=cfg.probe_rects
    ):
        totals[report.status] += 1
        print(report.line(), flush=True)
    print(
        f"total: {sum(totals.values())} files, written {totals['written']}, refused {totals['refused']}, "
        f"skipped {totals['skipped']}, errors {totals['error']}"
    )
    return 1 if totals["refused"] or totals["error"] else 0
