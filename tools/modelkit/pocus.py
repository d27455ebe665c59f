"""The ``pocus_dev`` lung ultrasound clips: their labels, their frames in gray, and their attribution.

Both recipes train on these clips, so they read them one way: ``labels.csv`` into ``ClipRecord``s,
every ``FRAME_STEP``-th frame decoded to gray uint8 at full resolution (large stills shrunk to a
scanner-like display size), cached as ``.npz`` under a temporary folder (never in the repo), and
``data_source`` writing a model's ``DATA_SOURCE.md`` from the data set's ``SOURCE.md`` and
``labels.csv``, since the clips' licences require attribution.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.inference.sector_search import gray_of as to_gray  # the runtime's, re-exported

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# The name predates the shared loader; the us-quality card quotes it, and the cached frames stay valid.
DEFAULT_CACHE = Path("/tmp/us_quality_cache")
FRAME_STEP = 3  # every 3rd frame of each clip is decoded (neighbouring frames are near-duplicates)
MAX_SIDE = 640  # larger stills (figures up to 2700 px) are shrunk to a scanner-like display size

# Clips left out of training and evaluation, with the reason (written to the model card).
EXCLUDED: dict[str, str] = {
    "convex/Cov_recommendations_likebutterfly_mov5.mov": (
        "zoomed-in, heavily smoothed and washed-out display: as a 'diagnostic' example it would teach "
        "the model that a saturated frame is fine, the opposite of the gain_high class"
    ),
}


@dataclass(frozen=True)
class ClipRecord:
    """One row of labels.csv."""

    file: str  # path relative to the data folder
    name: str
    label: str  # clinical label (COVID-19 / regular / ...), used only to stratify the split
    probe: str  # convex / linear
    kind: str  # video / image
    licence: str
    licence_link: str
    doi: str
    url: str
    row: dict[str, str]

    @property
    def is_video(self) -> bool:
        return not self.file.lower().endswith(IMAGE_SUFFIXES)

    @property
    def group(self) -> str:
        """Clips of one patient share a group so that a patient never straddles two splits."""
        m = re.match(r"Reg_(pat\d+)Image_", self.name)
        return m.group(1) if m else self.file


def load_labels(data_dir: Path) -> list[ClipRecord]:
    with (data_dir / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        ClipRecord(
            file=r["file"],
            name=r["Filename"],
            label=r["Label"],
            probe=r["Probe"].strip().lower(),
            kind="video" if not r["file"].lower().endswith(IMAGE_SUFFIXES) else "image",
            licence=r["License"],
            licence_link=r["LinkToLicense"],
            doi=r["DOI"],
            url=r["URL (Video Name)"],
            row=dict(r),
        )
        for r in rows
    ]


def _fit(gray: np.ndarray) -> np.ndarray:
    h, w = gray.shape
    f = MAX_SIDE / max(h, w)
    if f >= 1:
        return gray
    return cv2.resize(gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def video_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a video file in order, as OpenCV decodes it (BGR uint8)."""
    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def read_gray_frames(path: Path, step: int) -> np.ndarray:
    """Every ``step``-th frame of a video (or the one still) as gray uint8, shape (N, H, W)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"cannot read image {path}")
        return _fit(to_gray(img))[None]
    frames = [_fit(to_gray(f)) for i, f in enumerate(video_frames(path)) if i % step == 0]
    if not frames:
        raise OSError(f"no frames decoded from {path}")
    return np.stack(frames)


def cached_arrays(
    path: Path, step: int, cache_dir: Path, kind: str, compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``compute()`` for clip ``path`` decoded every ``step``-th frame, cached under ``cache_dir``.

    The cache key holds the clip's size and modification time, so an edited clip is decoded again,
    and ``kind`` (name and version of what is cached), so a change of what is computed is too.
    """
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{step}|{kind}"
    cache = cache_dir / f"{path.stem}-{hashlib.sha256(ident.encode()).hexdigest()[:20]}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    arrays = compute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds badly
    tmp.replace(cache)
    return arrays


def load_frames(
    data_dir: Path, rec: ClipRecord, step: int = FRAME_STEP, cache_dir: Path = DEFAULT_CACHE
) -> np.ndarray:
    """Every ``step``-th frame of the clip as gray uint8 (N, H, W), decoded once and then cached."""
    path = data_dir / rec.file
    return cached_arrays(path, step, cache_dir, "gray-v1", lambda: {"frames": read_gray_frames(path, step)})[
        "frames"
    ]


def data_source(data_dir: Path, used: list[str], model: str) -> str:
    """``DATA_SOURCE.md`` for a model trained on the files ``used``: the data set's ``SOURCE.md``
    verbatim, each file's licence and publication, and its ``labels.csv`` rows verbatim."""
    src = (data_dir / "SOURCE.md").read_text().strip()
    with (data_dir / "labels.csv").open(newline="") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = list(next(iter(rows.values())).keys())
    w.writerow(header)
    for f in sorted(used):
        w.writerow([rows[f][k] for k in header])
    table = "| file | licence | licence link | DOI | URL |\n| --- | --- | --- | --- | --- |\n" + "\n".join(
        f"| `{f}` | {rows[f]['License']} | {rows[f]['LinkToLicense']} | {rows[f]['DOI'] or '-'} | "
        f"{rows[f]['URL (Video Name)'] or '-'} |"
        for f in sorted(used)
    )
    return (
        f"# Data used to train and evaluate {model}\n\n"
        "The model was trained on, and evaluated on, the files below (see `split.json` for which split "
        "each is in). Their licences require attribution; it is reproduced here. The text of the data set's "
        "`SOURCE.md` follows, then each file's licence and publication.\n\n"
        "## SOURCE.md (verbatim)\n\n" + src + "\n\n## Files used\n\n" + table + "\n\n"
        "## labels.csv rows of the files used (verbatim)\n\n```csv\n" + buf.getvalue() + "```\n"
    )
