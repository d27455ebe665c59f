"""Check ``find_sector`` on any stills, videos, DICOM or NRRD files: a contact sheet and a table.

    python -m tools.modelkit.sector_check FOLDER_OR_FILE... --sheet out.png [--frames 8]

Each file's frames (up to ``--frames``, spread over a clip) go to ``find_sector`` together; the sheet
shows one frame per file with the found outline (green), the apex and the fan's sides (red), and
the table (printed, and written beside the sheet as ``.md``) gives file, kind, box, apex, angles
and the time the search took. A file where no area is found is shown with the reason.
"""

from __future__ import annotations

import argparse
import gzip
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.inference.sector import Sector, SectorNotFound, find_sector

IMAGES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEOS = (".mp4", ".mov", ".mpeg", ".mpg", ".avi", ".mkv", ".webm", ".gif")
DICOM = (".dcm", ".dicom")
NRRD = (".nrrd",)
TILE = 256


@dataclass
class Result:
    path: Path
    frame: np.ndarray | None
    sector: Sector | None
    ms: float
    error: str = ""


def media_files(paths: Sequence[Path]) -> Iterator[Path]:
    """The readable files among ``paths``, folders searched recursively, in sorted order."""
    suffixes = IMAGES + VIDEOS + DICOM + NRRD
    for p in paths:
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
        else:
            yield p


def _spread(n_total: int, n: int) -> list[int]:
    return sorted({round(i * (n_total - 1) / max(n - 1, 1)) for i in range(min(n, n_total))})


def _video(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    try:
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    return [frames[i] for i in _spread(len(frames), n)] if frames else []


def _dicom(path: Path, n: int) -> list[np.ndarray]:
    from pydicom.pixels import iter_pixels

    from edge.sources.dicom_file import probe

    image = probe(path)
    wanted = _spread(image.n_frames, n)
    if image.frame_by_frame:  # see edge.sources.dicom: native YBR_FULL_422 is decoded one frame a call
        arrays = [
            next(iter(iter_pixels(image.decode_from, indices=[i], **image.decode_kwargs))) for i in wanted
        ]
    else:
        arrays = list(iter_pixels(image.decode_from, indices=wanted, **image.decode_kwargs))
    return [image.render(a)[0] for a in arrays]


def read_nrrd(path: Path) -> np.ndarray:
    """A 2-D (or one-slice 3-D) uint8 NRRD image, raw or gzip encoded."""
    data = path.read_bytes()
    head, sep, body = data.partition(b"\n\n")
    if not sep or not head.startswith(b"NRRD"):
        raise ValueError(f"{path}: not an NRRD file")
    fields = dict(
        (k.strip().lower(), v.strip())
        for k, _, v in (line.decode("latin-1").partition(":") for line in head.splitlines()[1:])
        if not k.startswith("#")
    )
    if fields.get("type") not in ("unsigned char", "uchar", "uint8", "uint8_t"):
        raise ValueError(f"{path}: NRRD type {fields.get('type')!r} is not supported (uint8 only)")
    sizes = [int(s) for s in fields["sizes"].split()]
    raw = gzip.decompress(body) if fields.get("encoding") in ("gzip", "gz") else body
    if fields.get("encoding") not in ("gzip", "gz", "raw"):
        raise ValueError(f"{path}: NRRD encoding {fields.get('encoding')!r} is not supported")
    w, h = sizes[0], sizes[1]
    return np.frombuffer(raw, np.uint8, count=w * h).reshape(h, w)


def read_frames(path: Path, n: int) -> list[np.ndarray]:
    """Up to ``n`` frames of ``path`` (BGR or gray uint8), spread over a clip."""
    suffix = path.suffix.lower()
    if suffix in IMAGES:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        frames = [] if img is None else [img]
    elif suffix in VIDEOS:
        frames = _video(path, n)
    elif suffix in NRRD:
        frames = [read_nrrd(path)]
    else:
        frames = _dicom(path, n)
    if not frames:
        raise ValueError(f"{path}: no frame could be decoded")
    return frames


def check(path: Path, n_frames: int) -> Result:
    try:
        frames = read_frames(path, n_frames)
    except Exception as exc:  # any unreadable file is reported, not fatal
        return Result(path, None, None, 0.0, f"unreadable: {exc}")
    t0 = time.perf_counter()
    try:
        sector = find_sector(frames)
    except SectorNotFound as exc:
        return Result(path, frames[0], None, 1000 * (time.perf_counter() - t0), str(exc))
    return Result(path, frames[len(frames) // 2], sector, 1000 * (time.perf_counter() - t0))


def draw(frame: np.ndarray, sector: Sector | None) -> np.ndarray:
    """The frame with the outline (green), box (yellow), and for a fan its apex and sides (red)."""
    img = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    if sector is None:
        return img
    t = max(1, round(max(img.shape[:2]) / 300))
    contours, _ = cv2.findContours(sector.mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, (0, 255, 0), t)
    x0, y0, x1, y1 = sector.box
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 255), max(1, t // 2))
    if sector.apex is not None and sector.angles is not None and sector.radii is not None:
        ax, ay = sector.apex
        for a in sector.angles:
            end = (ax + sector.radii[1] * math.sin(a), ay + sector.radii[1] * math.cos(a))
            cv2.line(img, (round(ax), round(ay)), (round(end[0]), round(end[1])), (0, 0, 255), t)
        cv2.circle(img, (round(ax), round(ay)), 3 * t, (0, 0, 255), -1)
    return img


def _tile(result: Result) -> np.ndarray:
    tile = np.zeros((TILE + 30, TILE, 3), np.uint8)
    if result.frame is not None:
        img = draw(result.frame, result.sector)
        h, w = img.shape[:2]
        s = TILE / max(h, w)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        tile[: small.shape[0], : small.shape[1]] = small
    kind = result.sector.kind if result.sector else "NOT FOUND"
    colour = (255, 255, 255) if result.sector else (0, 0, 255)
    cv2.putText(tile, result.path.name[:38], (2, TILE + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1)
    cv2.putText(tile, f"{kind} {result.ms:.0f} ms", (2, TILE + 26), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1)
    return tile


def contact_sheet(results: Sequence[Result], columns: int = 6) -> np.ndarray:
    tiles = [_tile(r) for r in results]
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    return np.vstack([np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)])


def _fmt(values: Sequence[float] | None, digits: int = 0) -> str:
    return "-" if values is None else "(" + ", ".join(f"{v:.{digits}f}" for v in values) + ")"


def table(results: Sequence[Result]) -> str:
    lines = [
        "| file | kind | box | apex | angles (deg) | ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        s = r.sector
        if s is None:
            lines.append(f"| {r.path.name} | not found: {r.error} | - | - | - | {r.ms:.0f} |")
            continue
        angles = None if s.angles is None else [math.degrees(a) for a in s.angles]
        lines.append(
            f"| {r.path.name} | {s.kind} | {_fmt(s.box)} | {_fmt(s.apex)} | {_fmt(angles, 1)} | {r.ms:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.modelkit.sector_check", description=__doc__.split("\n")[0]
    )
    ap.add_argument("paths", nargs="+", type=Path, help="files or folders (searched recursively)")
    ap.add_argument("--sheet", type=Path, required=True, help="contact sheet to write (.png)")
    ap.add_argument("--frames", type=int, default=8, help="frames of a clip given to find_sector together")
    args = ap.parse_args(argv)
    files = list(media_files(args.paths))
    if not files:
        ap.error("no image, video, DICOM or NRRD files in the given paths")
    results = [check(f, max(1, args.frames)) for f in files]
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.sheet), contact_sheet(results)):
        raise SystemExit(f"{args.sheet}: cannot write the contact sheet")
    text = table(results)
    args.sheet.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    found = sum(r.sector is not None for r in results)
    print(text)
    print(f"\n{found}/{len(results)} found; sheet {args.sheet}, table {args.sheet.with_suffix('.md')}")
    return 0 if found == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
