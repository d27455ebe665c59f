"""The X-ray figures of docs/xray.md: real films through the real runtime, as the screen shows them.

Each film (a grey PNG or JPEG) is wrapped into a DICOM CR with the exposure indices a console
writes, and opened with ``edge run --headless --source dicom://FILE`` under the given config (the
default's models: cxr-lungs and cxr-finding), with the run's snapshots sink saving the composed
overlay at the film's full resolution. That snapshot is what the window shows; it is shrunk to a
small JPEG for the docs. No drawing here: the runtime's own overlay (edge.render) made it.

    python -m tools.xray_docs --out docs/xray \
        --film good=PATH/good.png:410:400 --film cut_off=PATH/cut.png:100:250 \
        --film pneumonia=PATH/child.jpeg:600:400

``NAME=IMAGE:EI:TEI`` writes ExposureIndex EI and TargetExposureIndex TEI; ``NAME=IMAGE`` writes
none ("no exposure index in the file"). ``--scale NAME=F`` enlarges a small film before wrapping it
(the paediatric films come at 224 x 224, too small for the overlay's text). Prints each film's
result (exposure, positioning, findings) from the run's results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

CR_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")  # Computed Radiography Image Storage
DOC_WIDTH = 1000  # px: the docs image's width
JPEG_QUALITY = 80
FINDING_KEYS = ("label", "confidence", "needs_review", "box")


@dataclass(frozen=True)
class Film:
    name: str
    image: Path
    ei: float | None = None
    tei: float | None = None
    scale: float = 1.0


def parse_film(spec: str) -> Film:
    """``NAME=IMAGE[:EI:TEI]``."""
    name, sep, rest = spec.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--film {spec!r}: expected NAME=IMAGE[:EI:TEI]")
    parts = rest.rsplit(":", 2)
    if len(parts) == 3:
        try:
            return Film(name, Path(parts[0]), float(parts[1]), float(parts[2]))
        except ValueError:
            pass  # a path with colons in it and no indices
    return Film(name, Path(rest))


def write_cr(film: Film, path: Path) -> Path:
    """``film`` as an 8-bit MONOCHROME2 CR of a PA chest (Burned In Annotation NO: a published film)."""
    image = cv2.imread(str(film.image), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"{film.image}: not an image OpenCV can read")
    if film.scale != 1.0:
        image = cv2.resize(image, None, fx=film.scale, fy=film.scale, interpolation=cv2.INTER_CUBIC)
    image = np.ascontiguousarray(image)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CR_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.BurnedInAnnotation = "NO"
    if film.ei is not None:
        ds.ExposureIndex = film.ei
    if film.tei is not None:
        ds.TargetExposureIndex = film.tei
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = image.tobytes()
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def run_film(edge: str, config: Path | None, dcm: Path, run_dir: Path) -> tuple[Path, dict]:
    """The runtime on ``dcm``: its overlay snapshot and its result."""
    cfg = run_dir / "config.toml"
    base = config.read_text() if config is not None else ""
    if "[display]" in base or "[output]" in base:
        raise SystemExit(f"{config}: leave out [display] and [output]; this script sets them")
    out_dir = json.dumps(str(run_dir))  # a TOML basic string
    cfg.write_text(
        base + f'\n[display]\nsinks = ["snapshots"]\nsnapshot_every_s = 0.001\n\n[output]\ndir = {out_dir}\n'
    )
    cmd = [edge, "run", "--headless", "--config", str(cfg), "--source", f"dicom://{dcm}", "--max-frames", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    snaps = sorted(run_dir.glob("**/snapshots/snapshot_*.png"))
    results = sorted(run_dir.glob("**/results.jsonl"))
    if not snaps or not results:
        raise SystemExit(f"{run_dir}: the run saved no snapshot or no results.jsonl:\n{done.stderr[-3000:]}")
    lines = [json.loads(x) for x in results[-1].read_text().splitlines() if x.strip()]
    return snaps[-1], (lines[-1] if lines else {})


def small_jpeg(snapshot: Path, out: Path, width: int = DOC_WIDTH) -> int:
    """The snapshot shrunk to ``width`` (never enlarged) as a JPEG; its size in bytes."""
    image = cv2.imread(str(snapshot), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{snapshot}: unreadable snapshot")
    h, w = image.shape[:2]
    if w > width:
        image = cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    if not cv2.imwrite(str(out), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise SystemExit(f"{out}: cannot write")
    return out.stat().st_size


def summary(result: dict) -> dict:
    """What the overlay's panel was drawn from."""
    return {
        "exposure": result.get("exposure"),
        "positioning": result.get("positioning"),
        "findings": [{k: f.get(k) for k in FINDING_KEYS} for f in result.get("findings", [])],
        "priority": result.get("priority"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.xray_docs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--film", type=parse_film, action="append", required=True, help="NAME=IMAGE[:EI:TEI]")
    ap.add_argument("--scale", action="append", default=[], help="NAME=FACTOR: enlarge a small film first")
    ap.add_argument("--out", type=Path, required=True, help="folder for NAME.jpg")
    ap.add_argument("--config", type=Path, help="TOML for the run (default: the embedded default)")
    ap.add_argument("--edge", default=str(Path(sys.executable).with_name("edge")), help="the edge command")
    args = ap.parse_args(argv)
    scales = {k: float(v) for k, _, v in (s.partition("=") for s in args.scale)}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xray-docs-") as tmp:
        for film in args.film:
            film = Film(film.name, film.image, film.ei, film.tei, scales.get(film.name, 1.0))
            run_dir = Path(tmp) / film.name
            run_dir.mkdir()
            dcm = write_cr(film, run_dir / f"{film.name}.dcm")
            snapshot, result = run_film(args.edge, args.config, dcm, run_dir)
            size = small_jpeg(snapshot, args.out / f"{film.name}.jpg")
            print(json.dumps({"film": film.name, "jpeg_bytes": size, **summary(result)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
