"""Untouched real frames per source: the share a published model folder calls ``diagnostic``.

A source is a publication or site (``tools.modelkit.grouped.source_of``), because frames of one
publication share a scanner, preset and display: what
matters for a new scanner is the spread *between* sources, never a pooled frame count. Intervals
are 95% percentile bootstraps that resample whole clips within a source (frames of one clip are not
independent); a source of one clip gets a Wilson interval over its frames, marked as such.

Frames go through the model folder's own manifest and the runtime's ``Preprocessor`` (a fresh one
per clip, frames in order, as a live stream would feed it), so whatever input view the manifest
names is what is scored. Also: other vendors' files (any folder the runtime can read) and darker
renderings of every frame (a darker scanner or display), so a model that only knows the dev
clips' brightness shows it.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.inference.manifest import load_manifest
from edge.inference.preprocess import Preprocessor
from edge.inference.tasks.classification import ClassificationTask
from tools.modelkit.grouped import source_of
from tools.modelkit.pocus import EXCLUDED, ClipRecord, load_frames, load_labels
from tools.modelkit.sessions import cpu_session
from tools.us_quality import LABELS

FILE_KEYS = {"fp32": ("fp32", False), "int8": ("int8", False), "int8_cpu": ("int8", True)}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def cluster_share(hits: Sequence[np.ndarray], n_boot: int = 2000, seed: int = 0) -> dict:
    """Share of True over all frames of all clips, with a 95% CI resampling clips (Wilson if one clip)."""
    k = int(sum(int(h.sum()) for h in hits))
    n = int(sum(len(h) for h in hits))
    if len(hits) < 2:
        lo, hi = wilson(k, n)
        return {"share": k / n if n else math.nan, "ci": [lo, hi], "ci_kind": "wilson-frames", "n": n}
    rng = np.random.default_rng(seed)
    ks, ns = np.array([h.sum() for h in hits], float), np.array([len(h) for h in hits], float)
    idx = rng.integers(0, len(hits), size=(n_boot, len(hits)))
    boots = ks[idx].sum(1) / np.maximum(ns[idx].sum(1), 1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"share": k / n, "ci": [float(lo), float(hi)], "ci_kind": "bootstrap-clips", "n": n}


Predictor = Callable[[Iterable[np.ndarray]], np.ndarray]


def folder_predictor(folder: Path, form: str = "int8_cpu") -> Predictor:
    """A function: the frames of one stream in order -> predicted class per frame, as the runtime runs it
    (the manifest's view and its ``fault_min_confidence``)."""
    pkg = load_manifest(folder)
    precision, cpu = FILE_KEYS[form]
    path, _, _ = pkg.file_for(precision, cpu=cpu)
    sess = cpu_session(path)
    spec = pkg.manifest.input
    task = ClassificationTask(pkg.manifest)  # the runtime's verdict, fault floor included
    labels = list(pkg.manifest.labels)
    out_name = sess.get_outputs()[0].name

    def run(frames: Iterable[np.ndarray]) -> np.ndarray:
        pre = Preprocessor(spec)
        preds = []
        for f in frames:
            x, _ = pre(f)
            preds.append(labels.index(task.quality(sess.run([out_name], {spec.name: x})[0]).label))
        return np.array(preds, int)

    return run


def darker(gray: np.ndarray, gain: float, gamma: float = 1.0) -> np.ndarray:
    """The frame as a darker scanner or display would show it: levels x ``gain``, then a gamma."""
    lut = np.clip(np.rint(255.0 * ((np.arange(256) * gain / 255.0) ** gamma)), 0, 255).astype(np.uint8)
    return cv2.LUT(gray, lut)


DARK_VARIANTS: dict[str, tuple[float, float]] = {
    "as is": (1.0, 1.0),
    "x0.5": (0.5, 1.0),
    "x0.6 g1.4": (0.6, 1.4),
}


def pocus_report(predict: Predictor, data_dir: Path, cache: Path, step: int = 3) -> dict:
    """Per source and darkening: share of untouched frames called diagnostic, with CI, and label counts."""
    recs = [r for r in load_labels(data_dir) if r.file not in EXCLUDED]
    by_source: dict[str, list[ClipRecord]] = {}
    for r in recs:
        by_source.setdefault(source_of(r), []).append(r)
    out: dict[str, dict] = {}
    for variant, (gain, gamma) in DARK_VARIANTS.items():
        rows: dict[str, dict] = {}
        for src, rs in sorted(by_source.items()):
            preds = [
                predict(darker(f, gain, gamma) for f in load_frames(data_dir, r, step, cache)) for r in rs
            ]
            row = cluster_share([p == 0 for p in preds])
            row["clips"] = len(rs)
            row["labels"] = np.bincount(np.concatenate(preds), minlength=len(LABELS)).tolist()
            rows[src] = row
        out[variant] = rows
    return out


def vendor_report(predict: Predictor, vendor_dir: Path, max_frames: int = 60) -> dict:
    """Per file of another vendor (any format the runtime reads): label counts over its frames."""
    from tools.modelkit.frames import read_frames

    rows: dict[str, dict] = {}
    for path in sorted(vendor_dir.iterdir()):
        if path.suffix.lower() not in (".mp4", ".png", ".jpg", ".jpeg", ".dcm"):
            continue
        try:
            frames = read_frames(path, max_frames)
        except Exception as exc:  # a file the runtime cannot read is reported, not fatal
            rows[path.name] = {"error": str(exc)}
            continue
        row = {}
        for variant, (gain, gamma) in DARK_VARIANTS.items():
            gray = [f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
            p = predict(darker(g, gain, gamma) for g in gray)
            row[variant] = np.bincount(p, minlength=len(LABELS)).tolist()
        rows[path.name] = row
    return rows


def share_cell(r: dict) -> str:
    """A share with its interval, ``*`` where the interval is Wilson's over one clip's frames."""
    star = "*" if r["ci_kind"] == "wilson-frames" else ""
    return f"{r['share']:.3f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]{star}"


def markdown(report: dict) -> str:
    lines = ["| source | clips | frames | " + " | ".join(f"diag. {v} [95% CI]" for v in DARK_VARIANTS) + " |"]
    lines.append("| --- | ---: | ---: |" + " ---: |" * len(DARK_VARIANTS))
    first = report[next(iter(DARK_VARIANTS))]
    for src in first:
        cells = [share_cell(report[v][src]) for v in DARK_VARIANTS]
        lines.append(f"| {src} | {first[src]['clips']} | {first[src]['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.us_quality.sources", description=__doc__)
    p.add_argument("--model", type=Path, required=True, help="a model folder (manifest.json)")
    p.add_argument("--data", type=Path, required=True, help="the pocus_dev folder")
    p.add_argument("--vendors", type=Path, default=None, help="a folder of other vendors' files")
    p.add_argument("--form", default="int8_cpu", choices=tuple(FILE_KEYS))
    p.add_argument("--cache", type=Path, default=Path("/tmp/us_quality_cache"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    predict = folder_predictor(args.model, args.form)
    rep: dict[str, object] = {"model": str(args.model), "form": args.form}
    rep["pocus"] = pocus_report(predict, args.data, args.cache)
    print(markdown(rep["pocus"]), flush=True)  # type: ignore[arg-type]
    if args.vendors:
        rep["vendors"] = vendor_report(predict, args.vendors)
        for name, row in rep["vendors"].items():  # type: ignore[attr-defined]
            print(name, row, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
