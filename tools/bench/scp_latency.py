"""From the console's C-STORE response to the result on screen: ``edge run`` as a DICOM Storage SCP,
fed one image at a time by dcmtk's storescu, as a portable X-ray console sends its exposures.

    python -m tools.bench.scp_latency [--images 50] [--interval-s 1.5] [--config edge.toml]
                                      [--image FILE.dcm] [--out summary.json]

Starts ``edge run --headless --source dicom+scp://127.0.0.1:PORT?...`` (the default config, or
``--config``) in a scratch folder, waits until echoscu is answered, then sends ``--images`` copies of
a real chest CR (default: pydicom-data's RG1_UNCR.dcm, 1955 x 1841, 15 bits) with new SOP Instance
UIDs and exposure indices (EI around a target of 400, DI = 10 log10(EI / TEI)), one storescu run
each, ``--interval-s`` apart; stops the run with SIGINT and reads its report.

The figure is the run report's ``result_on_screen``: from the moment the SCP stored the object and
answered success (the frame's capture time) to the first frame on screen carrying its result, per
image: median and max. ``capture_to_result`` (the same start, to the result) and storescu's own
round trip (start to exit: association, transfer, the durable store, release) are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

CALLER, AET = "BENCH", "EDGE"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        sys.exit(f"{name} not found: install dcmtk (scripts/setup.sh --test does)")
    return path


def _default_image() -> Path:
    from pydicom.data import get_testdata_file

    found = get_testdata_file("RG1_UNCR.dcm")
    if not isinstance(found, str):
        sys.exit("RG1_UNCR.dcm is not installed (the pydicom-data package); give --image")
    return Path(found)


def _wait_for_echo(port: int, proc: subprocess.Popen[bytes], timeout_s: float, log_path: Path) -> None:
    echoscu = _tool("echoscu")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            sys.exit(f"edge run ended (exit {proc.returncode}) before answering C-ECHO; its log:\n{tail}")
        args = [echoscu, "-aet", CALLER, "-aec", AET, "127.0.0.1", str(port)]
        if subprocess.run(args, capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.5)
    sys.exit(f"no C-ECHO answer on port {port} within {timeout_s:.0f} s")


def _exposure(i: int) -> tuple[float, float, float]:
    """EI swept from under- to over-exposed around a target of 400; DI = 10 log10(EI / TEI)."""
    ei = 400.0 * 10 ** ((i % 9 - 4) / 10)  # DI from -4 to +4
    return round(ei, 1), 400.0, round(10 * math.log10(ei / 400.0), 2)


def _send(storescu: str, port: int, ds: pydicom.Dataset, i: int, folder: Path) -> tuple[bool, float]:
    """``ds`` sent as the next exposure (a new SOP Instance UID and exposure indices written into it)."""
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ExposureIndex, ds.TargetExposureIndex, ds.DeviationIndex = _exposure(i)
    path = folder / f"image_{i:03d}.dcm"
    ds.save_as(path)
    t0 = time.monotonic()
    run = subprocess.run(
        [storescu, "-v", "-aet", CALLER, "-aec", AET, "127.0.0.1", str(port), str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    path.unlink()
    return "Received Store Response (Success)" in run.stdout + run.stderr, elapsed


def _figures(values: list[float]) -> dict[str, float]:
    return (
        {"count": len(values), "p50": statistics.median(values), "max": max(values)}
        if values
        else {"count": 0}
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    storescu = _tool("storescu")
    base = pydicom.dcmread(args.image)
    with tempfile.TemporaryDirectory(prefix="scp-latency-") as scratch:
        work = Path(scratch)
        port = _free_port()
        url = f"dicom+scp://127.0.0.1:{port}?aet={AET}&callers={CALLER}&store={work / 'dicom-in'}"
        report = work / "report.json"
        cmd = [sys.executable, "-m", "edge", "run", "--headless", "--source", url, "--report", str(report)]
        if args.config:
            cmd += ["--config", str(Path(args.config).resolve())]
        log_path = work / "edge.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_for_echo(port, proc, args.start_timeout_s, log_path)
                sent: list[tuple[bool, float]] = []
                t_next = time.monotonic()
                for i in range(args.images):
                    time.sleep(max(0.0, t_next - time.monotonic()))
                    t_next += args.interval_s
                    sent.append(_send(storescu, port, base, i, work))
                time.sleep(max(args.interval_s, 3.0))  # the last image's result reaches the screen
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if not report.exists():
            sys.exit(f"edge run wrote no report; its log:\n{log_path.read_text()[-3000:]}")
        rep = json.loads(report.read_text())
    lat = rep.get("latency_ms", {})
    return {
        "image": str(args.image),
        "size": [int(base.Rows), int(base.Columns)],
        "images_sent": args.images,
        "stores_succeeded": sum(ok for ok, _ in sent),
        "interval_s": args.interval_s,
        "models": [m.get("name") for m in rep.get("models", [])],
        "source": rep.get("source", {}).get("extra", {}),
        "counters": rep.get("counters", {}),
        "chain": rep.get("chain", {}),  # which models ran on the CR frames, and the frames none was for
        "result_on_screen_ms": lat.get("result_on_screen", {"count": 0}),
        "capture_to_result_ms": lat.get("capture_to_result", {"count": 0}),
        "display_ms": lat.get("display", {"count": 0}),  # capture to the frame's first showing, bare or not
        "cpu": rep.get("cpu", {}),
        "storescu_round_trip_ms": _figures([t * 1e3 for _, t in sent]),
        "exit": rep.get("exit"),
        "cpu_count": os.cpu_count(),
    }


def _line(name: str, fig: dict[str, Any]) -> str:
    if not fig.get("count"):
        return f"{name:<28} no figures"
    return f"{name:<28} n={int(fig['count']):>3}  median {fig['p50']:8.1f} ms  max {fig['max']:8.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--interval-s", type=float, default=1.5, help="between storescu runs (default 1.5)")
    parser.add_argument("--config", help="edge TOML config (default: the embedded default)")
    parser.add_argument("--image", type=Path, default=None, help="DICOM image to send (default RG1_UNCR.dcm)")
    parser.add_argument("--start-timeout-s", type=float, default=180.0)
    parser.add_argument("--out", type=Path, help="write the summary here as JSON")
    args = parser.parse_args(argv)
    args.image = args.image or _default_image()
    summary = run(args)
    print(f"{summary['stores_succeeded']}/{summary['images_sent']} stored; models: {summary['models']}")
    print(_line("result_on_screen", summary["result_on_screen_ms"]))
    print(_line("capture_to_result", summary["capture_to_result_ms"]))
    print(_line("display (first showing)", summary["display_ms"]))
    print(_line("storescu round trip", summary["storescu_round_trip_ms"]))
    print(f"source: {summary['source']}")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return 0 if summary["stores_succeeded"] == summary["images_sent"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
