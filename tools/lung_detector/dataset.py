"""Step 1, ``dataset``: phantom frames with exact boxes and real frames with clip labels.

Everything is stored already letterboxed to the model input by the runtime's own Preprocessor,
as uint8, in one ``dataset.npz``; ``dataset.json`` records what went in (scene parameters per
phantom split, real clips with licence and label, frame counts and array hashes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.inference.preprocess import Preprocessor
from tools.lung_detector.phantom_data import phantom_frames
from tools.lung_detector.real_data import b_line_label, split_clips, subsample
from tools.lung_detector.recipe import Recipe
from tools.modelkit.pocus import DEFAULT_CACHE, FRAME_STEP, load_frames, load_labels

PHANTOM_SPLITS = ("train", "val", "test")
SEED_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_003}  # disjoint scene streams per split


@dataclass
class BoxSet:
    """Images with their boxes: ``boxes[offsets[i]:offsets[i+1]]`` belong to image ``i``."""

    images: np.ndarray  # (N, S, S) uint8
    boxes: np.ndarray  # (K, 4) float32 xyxy, input pixels
    classes: np.ndarray  # (K,) int64
    offsets: np.ndarray  # (N+1,) int64

    def of(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.boxes[a:b], self.classes[a:b]

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class WeakSet:
    """Real frames with the B-line label of their clip."""

    images: np.ndarray  # (N, S, S) uint8
    b_lines: np.ndarray  # (N,) int64 0/1
    clip: np.ndarray  # (N,) int64 index into files
    files: list[str]

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Dataset:
    phantom: dict[str, BoxSet]
    real_train: WeakSet
    real_test: WeakSet


def _fit_all(pre: Preprocessor, frames: list[np.ndarray]) -> tuple[np.ndarray, list[Any]]:
    out, transforms = [], []
    for f in frames:
        img, t = pre.fit(f)
        out.append(img.copy())
        transforms.append(t)
    return np.stack(out) if out else np.zeros((0, *pre.spec.hw), np.uint8), transforms


def _phantom_split(r: Recipe, pre: Preprocessor, split: str, n: int, log: Any) -> tuple[BoxSet, dict]:
    frames = phantom_frames(n, r.seed + SEED_OFFSET[split], r.labels)
    images, transforms = _fit_all(pre, [f.image for f in frames])
    boxes, classes, offsets = [], [], [0]
    for f, t in zip(frames, transforms):
        boxes.append(t.to_input(f.boxes))
        classes.append(f.labels)
        offsets.append(offsets[-1] + len(f.labels))
    counts: list[int] = (
        np.bincount(np.concatenate(classes), minlength=len(r.labels)).tolist() if classes else []
    )
    summary = {
        "frames": n,
        "seed": r.seed + SEED_OFFSET[split],
        "boxes_per_label": {lab: int(c) for lab, c in zip(r.labels, counts)},
        "frames_with_events": sum(1 for f in frames if f.scene["events"]),
        "convex_frames": sum(1 for f in frames if f.scene["probe"] == "convex"),
    }
    log(f"phantom {split}: {n} frames, boxes {summary['boxes_per_label']}")
    bs = BoxSet(
        images,
        np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        np.concatenate(classes).astype(np.int64) if classes else np.zeros(0, np.int64),
        np.asarray(offsets, np.int64),
    )
    return bs, summary


def _real_split(
    r: Recipe, pre: Preprocessor, files: list[str], per_clip: int, cache: Path, log: Any
) -> tuple[WeakSet, list[dict]]:
    data = r.pocus_dir()
    by_file = {rec.file: rec for rec in load_labels(data)}
    images, labels, clip_ix, rows = [], [], [], []
    for i, f in enumerate(files):
        rec = by_file[f]
        frames = subsample(load_frames(data, rec, FRAME_STEP, cache), per_clip)
        fitted, _ = _fit_all(pre, list(frames))
        label = b_line_label(rec)
        assert label is not None  # split_clips keeps labelled clips only
        images.append(fitted)
        labels += [label] * len(fitted)
        clip_ix += [i] * len(fitted)
        rows.append(
            {
                "file": f,
                "b_lines": label,
                "frames": len(fitted),
                "licence": rec.licence,
                "licence_link": rec.licence_link,
                "doi": rec.doi,
                "url": rec.url,
            }
        )
    log(f"real: {len(files)} clips, {sum(len(x) for x in images)} frames")
    ws = WeakSet(
        np.concatenate(images) if images else np.zeros((0, *pre.spec.hw), np.uint8),
        np.asarray(labels, np.int64),
        np.asarray(clip_ix, np.int64),
        list(files),
    )
    return ws, rows


def build(r: Recipe, work: Path, cache: Path = DEFAULT_CACHE, log: Any = print) -> Dataset:
    pre = Preprocessor(r.input_spec())
    sizes = {"train": r.data.phantom_train, "val": r.data.phantom_val, "test": r.data.phantom_test}
    phantom, summaries = {}, {}
    for split in PHANTOM_SPLITS:
        phantom[split], summaries[split] = _phantom_split(r, pre, split, sizes[split], log)
    splits = split_clips(load_labels(r.pocus_dir()), r.seed, r.data.test_fraction, r.data.pinned_test)
    real_train, rows_train = _real_split(
        r, pre, splits["train"], r.data.real_train_frames_per_clip, cache, log
    )
    real_test, rows_test = _real_split(r, pre, splits["test"], r.data.real_test_frames_per_clip, cache, log)
    ds = Dataset(phantom, real_train, real_test)
    save(ds, work / "dataset.npz")
    manifest = {
        "recipe": r.to_dict(),
        "input": r.input_spec().model_dump(),
        "phantom": summaries,
        "real": {
            "source": "pocus_dev (CC BY clips; see DATA_SOURCE.md)",
            "split_rule": "whole patients per side, stratified by the clip's B-line label; "
            f"{r.data.test_fraction:.0%} of labelled videos to test; stills to train; "
            f"pinned to test: {list(r.data.pinned_test)}",
            "train": rows_train,
            "test": rows_test,
        },
        "sha256": {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in _arrays(ds).items()},
    }
    (work / "dataset.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return ds


def _arrays(ds: Dataset) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for split, bs in ds.phantom.items():
        out |= {
            f"p_{split}_images": bs.images,
            f"p_{split}_boxes": bs.boxes,
            f"p_{split}_classes": bs.classes,
            f"p_{split}_offsets": bs.offsets,
        }
    for name, ws in (("r_train", ds.real_train), ("r_test", ds.real_test)):
        out |= {f"{name}_images": ws.images, f"{name}_b_lines": ws.b_lines, f"{name}_clip": ws.clip}
    return out


def save(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    files = {"r_train_files": np.array(ds.real_train.files), "r_test_files": np.array(ds.real_test.files)}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **_arrays(ds), **files)  # type: ignore[arg-type]  # numpy's stub types **kwds badly
    tmp.replace(path)


def load(path: Path) -> Dataset:
    with np.load(path) as z:
        phantom = {
            s: BoxSet(z[f"p_{s}_images"], z[f"p_{s}_boxes"], z[f"p_{s}_classes"], z[f"p_{s}_offsets"])
            for s in PHANTOM_SPLITS
        }
        weak = {
            n: WeakSet(z[f"{n}_images"], z[f"{n}_b_lines"], z[f"{n}_clip"], [str(f) for f in z[f"{n}_files"]])
            for n in ("r_train", "r_test")
        }
    return Dataset(phantom, weak["r_train"], weak["r_test"])
