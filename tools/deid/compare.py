"""Compare our de-identifier with the PyPI package ``dicom-anonymizer`` on the same files.

    .venv/bin/python -m tools.deid.compare [--studies 3] [--vendor-dir DIR] [--json out.json]

Inputs: the vendor files of the installed ``pydicom-data`` (``data_store/data``), and synthetic studies from
``tools.deid.markers`` (a unique marker in every attribute of PS3.15 Table E.1-1, nested two sequences deep,
in private attributes and repeating groups). For each tool, side by side: files written / refused / failed,
outputs that read back in pydicom (pixels included), markers left (synthetic), identifying values of the
source left (vendor: names, ids, dates, UIDs found in the output bytes), studies whose files share one
new Study Instance UID and whose references still point at the right file, private attributes left, and
ultrasound images with pixels left outside their regions. Needs ``pip install dicom-anonymizer``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from edge.deid.files import deidentify_file
from edge.deid.header import DeidOptions, deidentify_header, mark_deidentified
from edge.deid.pixels import region_mask, ultrasound_regions
from tools.deid.markers import Planted, marker_study, private_left, save, text_leaks, value_leaks, walk

_IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "OperatorsName",
    "PerformingPhysicianName",
    "StationName",
    "StudyID",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "DeviceSerialNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)

Tool = Callable[[Path, Path], Path | None]  # input, output folder -> written file, None if refused


def ours(key: bytes) -> Tool:
    options = DeidOptions(key=key)

    def run(src: Path, out: Path) -> Path | None:
        report = deidentify_file(src, out, options)
        if report.status in ("error", "skipped"):  # counted as failed, like an exception of the other tool
            raise RuntimeError(report.reason)
        return report.output

    return run


def ours_header_only(key: bytes) -> Tool:
    """Our header de-identification written for every file, pixels untouched and never refused: compares
    headers on all the files the other tool writes (not a mode the runtime offers)."""
    options = DeidOptions(key=key)

    def run(src: Path, out: Path) -> Path | None:
        ds = pydicom.dcmread(src)
        if "SOPInstanceUID" not in ds:
            raise RuntimeError("no SOP Instance UID (truncated)")
        deidentify_header(ds, options)
        mark_deidentified(ds, options, pixels_cleaned=False)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = out / f"{ds.SOPInstanceUID}-{len(list(out.iterdir())) if out.exists() else 0}.dcm"
        out.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        return target

    return run


def dicom_anonymizer() -> Tool:
    from dicomanonymizer import anonymize_dicom_file

    def run(src: Path, out: Path) -> Path | None:
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{len(list(out.iterdir())):05d}.dcm"
        with redirect_stdout(io.StringIO()):  # it prints per-tag chatter
            anonymize_dicom_file(str(src), str(target), delete_private_tags=True)
        return target

    return run


def identifying_values(path: Path) -> list[tuple[str, str]]:
    """(keyword, value) of the source that identify someone or an exam, as they would appear in an output."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    # a value that also appears in an attribute the profile keeps (OFFIS as Manufacturer, 00000 inside
    # 6.000000) is not counted: finding it in the output says nothing
    kept = [
        str(e.value)
        for e in ds.iterall()
        if e.keyword not in _IDENTIFYING and not e.tag.is_private and e.VR != "SQ"
    ]
    values = []
    for keyword in _IDENTIFYING:
        value = str(ds.get(keyword, "") or "").strip()
        if (
            len(value) >= 4
            and value.upper() not in ("NONE", "ANONYMOUS")
            and not any(value in k for k in kept)
        ):
            values.append((keyword, value))
    return values


def outside_pixels_left(src: Path, out: Path) -> bool:
    """Does an ultrasound output still hold non-black pixels outside the source's regions?"""
    before = pydicom.dcmread(src, stop_before_pixels=True)
    if str(before.get("Modality", "")) != "US" or "SequenceOfUltrasoundRegions" not in before:
        return False
    after = pydicom.dcmread(out)
    arr = after.pixel_array
    inside = region_mask(int(after.Rows), int(after.Columns), ultrasound_regions(before))
    outside = arr[..., ~inside, :] if int(after.SamplesPerPixel) > 1 else arr[..., ~inside]
    if after.PhotometricInterpretation == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        outside = apply_color_lut(outside, after)
    return bool(np.any(outside > outside.min())) or int(outside.min()) > 0


def evaluate(
    tool: Tool, vendor: list[Path], studies: list[tuple[list[Path], Planted]], work: Path
) -> dict[str, Any]:
    c: Counter[str] = Counter()
    examples: list[str] = []
    t0 = time.perf_counter()
    for src in vendor:
        c["vendor_in"] += 1
        out = _run_one(tool, src, work / "vendor", c)
        if out is None:
            continue
        # Compared as parsed values at every depth, not as raw bytes: a short id such as "0010"
        # turns up by chance inside a shifted date ("20010506") and would be a false hit.
        values = _values(out)
        left = [k for k, v in identifying_values(src) if v in values]
        c["vendor_identifying_left"] += len(left)
        examples.extend(f"{src.name}:{k}" for k in left)
        c["readable"] += _readable(out)
        try:
            after = pydicom.dcmread(out)
            c["private_left"] += private_left(after)
            c["us_pixels_outside_left"] += outside_pixels_left(src, out)
        except Exception:
            pass
    for k, (paths, planted) in enumerate(studies):
        c["studies"] += 1
        outs: list[Path] = []
        for src in paths:
            c["synthetic_in"] += 1
            out = _run_one(tool, src, work / f"study{k}", c)
            if out is None:
                continue
            outs.append(out)
            c["markers_planted"] += planted.count
            c["markers_left"] += len(text_leaks(out.read_bytes(), planted))
            c["readable"] += _readable(out)
            try:
                ds = pydicom.dcmread(out)
                c["markers_left"] += len(value_leaks(ds, planted))
                c["private_left"] += private_left(ds)
            except Exception:
                pass
        if len(outs) == len(paths):
            same_study, refs = _consistent(outs)
            c["studies_same_uid"] += same_study
            c["studies_refs_intact"] += refs
    result: dict[str, Any] = dict(c)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["vendor_identifying_left_where"] = examples
    return result


def _values(path: Path) -> set[str]:
    """Every element value of a file, at every sequence depth, as text (multi-values one by one)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:
        return set()
    out: set[str] = set()
    for _, value in walk(ds):
        items = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        out.update(str(v) for v in items)  # type: ignore[attr-defined]
    return out


def _run_one(tool: Tool, src: Path, dest: Path, c: Counter[str]) -> Path | None:
    """Run ``tool`` on one file, counting it written, refused (fail closed) or failed."""
    try:
        out = tool(src, dest)
    except Exception:
        c["failed"] += 1
        return None
    c["refused" if out is None else "written"] += 1
    return out


def _readable(path: Path) -> int:
    try:
        ds = pydicom.dcmread(path)
        if "PixelData" in ds:
            ds.pixel_array  # noqa: B018 - decoding is the check
        return 1
    except Exception:
        return 0


def _consistent(outs: list[Path]) -> tuple[int, int]:
    """(files share one new Study UID, each file's reference still names the first file's new SOP UID)."""
    try:
        dss = [pydicom.dcmread(p, stop_before_pixels=True) for p in outs]
    except Exception:
        return 0, 0
    uids = {str(ds.get("StudyInstanceUID", "")) for ds in dss}
    same = len(uids) == 1 and not any("98765" in u or not u for u in uids)
    refs = all(
        "ReferencedImageSequence" in ds
        and len(ds.ReferencedImageSequence) > 0
        and str(ds.ReferencedImageSequence[0].get("ReferencedSOPInstanceUID", ""))
        == str(dss[0].SOPInstanceUID)
        for ds in dss[1:]
    )
    return int(same), int(refs)


ROWS = [
    ("files in (vendor + synthetic)", lambda r: r.get("vendor_in", 0) + r.get("synthetic_in", 0)),
    ("written", lambda r: r.get("written", 0)),
    ("refused (fail closed)", lambda r: r.get("refused", 0)),
    ("failed (not DICOM, truncated)", lambda r: r.get("failed", 0)),
    ("outputs readable (pixels decode)", lambda r: r.get("readable", 0)),
    ("synthetic markers planted", lambda r: r.get("markers_planted", 0)),
    ("synthetic markers left", lambda r: r.get("markers_left", 0)),
    ("vendor identifying values left", lambda r: r.get("vendor_identifying_left", 0)),
    ("studies sharing one new Study UID", lambda r: f"{r.get('studies_same_uid', 0)}/{r.get('studies', 0)}"),
    ("studies with references intact", lambda r: f"{r.get('studies_refs_intact', 0)}/{r.get('studies', 0)}"),
    ("private attributes left", lambda r: r.get("private_left", 0)),
    ("US images, pixels outside regions", lambda r: r.get("us_pixels_outside_left", 0)),
    ("seconds", lambda r: r.get("seconds", 0)),
]


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    lines = [f"| {'':36s} | " + " | ".join(f"{n:>18s}" for n in names) + " |"]
    lines.append("|" + "-" * 38 + "|" + "|".join("-" * 20 for _ in names) + "|")
    for label, get in ROWS:
        lines.append(f"| {label:36s} | " + " | ".join(f"{get(results[n])!s:>18s}" for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=3, help="synthetic studies of two files each (3)")
    ap.add_argument("--vendor-dir", type=Path, help="folder of vendor files (default: pydicom-data's)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")  # both tools read odd vendor files; pydicom warns a lot
    vendor_dir = args.vendor_dir
    if vendor_dir is None:
        import data_store

        vendor_dir = Path(data_store.__file__).parent / "data"
    vendor = sorted(p for p in vendor_dir.glob("*.dcm") if p.is_file())
    with tempfile.TemporaryDirectory(prefix="deid-compare-") as tmp:
        root = Path(tmp)
        studies = []
        for s in range(args.studies):
            datasets, planted = marker_study(2)
            studies.append(
                ([save(ds, root / "in" / f"s{s}" / f"{k}.dcm") for k, ds in enumerate(datasets)], planted)
            )
        results = {
            "scanner-edge": evaluate(ours(os.urandom(32)), vendor, studies, root / "ours"),
            "scanner-edge hdr": evaluate(ours_header_only(os.urandom(32)), vendor, studies, root / "hdr"),
            "dicom-anonymizer": evaluate(dicom_anonymizer(), vendor, studies, root / "theirs"),
        }
    print(f"{len(vendor)} vendor files from {vendor_dir}, {args.studies} synthetic studies of 2 files")
    print(table(results))
    print("scanner-edge hdr: our header de-identification on every file, pixels neither cleaned nor refused")
    for name, r in results.items():
        if r["vendor_identifying_left_where"]:
            print(f"{name}: identifying values left in {', '.join(r['vendor_identifying_left_where'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
