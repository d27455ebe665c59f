"""Step 1, ``dataset``: phantom frames with exact boxes and real frames with the teacher's boxes.

Every image is stored as the model sees it: the frame's sector, normalised and resampled to scan
lines (``scan_input``, the runtime's ``input.view = "scanlines"``), as uint8, in one
``dataset.npz``; ``dataset.json`` records what went in (scene parameters per phantom split, real
clips with source, licence and label, frame counts and array hashes).

- Phantom: random lung scenes; the training split is domain-randomised (``randomise``: gray map,
  gain, TGC, speckle, resolution, noise) before preprocessing, val and test are not.
- Real: every pocus_dev clip with a known B-line label, ``real_frames_per_clip`` frames each, with
  the teacher's boxes under the clip's label (``pseudo_labels``). Which clips a model may train on
  is decided later, per fold (``train.fit(train_clips=...)``): the data set holds them all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.lung_detector.phantom_data import phantom_frames
from tools.lung_detector.pseudo_labels import frame_boxes
from tools.lung_detector.randomise import randomise
from tools.lung_detector.real_data import subsample
from tools.lung_detector.recipe import Recipe
from tools.lung_detector.scan_input import ScanInput
from tools.modelkit.grouped import b_line_label, source_of
from tools.modelkit.pocus import DEFAULT_CACHE, EXCLUDED, FRAME_STEP, load_frames, load_labels

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
class RealSet:
    """Real frames of every labelled clip with the teacher's boxes (a BoxSet) and their clip."""

    frames: BoxSet
    trainable: np.ndarray  # (N,) bool: False for a B-line clip's frame the teacher found none on
    clip: np.ndarray  # (N,) int64 index into files
    files: list[str]
    b_lines: np.ndarray  # (n_clips,) int64 clip label

    def __len__(self) -> int:
        return len(self.frames)

    def indices(self, clips: set[str] | None = None, trainable: bool = False) -> np.ndarray:
        """Frame indices of ``clips`` (all clips if None), only trainable ones if asked."""
        keep = (
            np.ones(len(self), bool)
            if clips is None
            else np.isin(np.asarray(self.files)[self.clip], list(clips))
        )
        return np.flatnonzero(keep & self.trainable) if trainable else np.flatnonzero(keep)


@dataclass
class Dataset:
    phantom: dict[str, BoxSet]
    real: RealSet


def _boxset(
    images: list[np.ndarray], boxes: list[np.ndarray], classes: list[np.ndarray], size: int
) -> BoxSet:
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in classes])]).astype(np.int64)
    return BoxSet(
        np.stack(images) if images else np.zeros((0, size, size), np.uint8),
        np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        np.concatenate(classes).astype(np.int64) if classes else np.zeros(0, np.int64),
        offsets,
    )


def _phantom_split(r: Recipe, split: str, n: int, log: Any) -> tuple[BoxSet, dict]:
    frames = phantom_frames(n, r.seed + SEED_OFFSET[split], r.labels)
    rng = np.random.default_rng(r.seed + SEED_OFFSET[split] + 17)
    b_line = r.labels.index("b_line")
    spec = r.input_spec()
    images, boxes, classes = [], [], []
    for f in frames:
        shown = randomise(f.image, rng) if split == "train" else f.image
        scan = ScanInput([shown], spec)
        images.append(scan(shown))
        boxes.append(scan.boxes_to_input(f.boxes, f.labels == b_line))
        classes.append(f.labels)
    counts = np.bincount(np.concatenate(classes), minlength=len(r.labels)).tolist() if classes else []
    summary = {
        "frames": n,
        "seed": r.seed + SEED_OFFSET[split],
        "domain_randomised": split == "train",
        "boxes_per_label": {lab: int(c) for lab, c in zip(r.labels, counts)},
        "frames_with_events": sum(1 for f in frames if f.scene["events"]),
        "convex_frames": sum(1 for f in frames if f.scene["probe"] == "convex"),
    }
    log(f"phantom {split}: {n} frames, boxes {summary['boxes_per_label']}")
    return _boxset(images, boxes, classes, r.input_size), summary


def _real(r: Recipe, cache: Path, log: Any) -> tuple[RealSet, list[dict]]:
    data = r.pocus_dir()
    recs = [x for x in load_labels(data) if x.file not in EXCLUDED and b_line_label(x) is not None]
    spec = r.input_spec()
    images, boxes, classes, trainable, clip_ix, rows = [], [], [], [], [], []
    for i, rec in enumerate(recs):
        label = b_line_label(rec)
        assert label is not None
        frames = subsample(load_frames(data, rec, FRAME_STEP, cache), r.data.real_frames_per_clip)
        scan = ScanInput(list(frames), spec)
        kept = 0
        for fr in frames:
            img = scan(fr)
            got = frame_boxes(img, label, r.labels)
            images.append(img)
            boxes.append(got[0] if got else np.zeros((0, 4), np.float32))
            classes.append(got[1] if got else np.zeros(0, np.int64))
            trainable.append(got is not None)
            clip_ix.append(i)
            kept += got is not None
        rows.append(
            {
                "file": rec.file,
                "source": source_of(rec),
                "b_lines": label,
                "frames": len(frames),
                "frames_with_teacher_boxes": kept,
                "sector": scan.sector.kind,
                "licence": rec.licence,
                "licence_link": rec.licence_link,
                "doi": rec.doi,
                "url": rec.url,
            }
        )
    log(f"real: {len(recs)} clips, {len(images)} frames, {sum(trainable)} with teacher boxes")
    rs = RealSet(
        _boxset(images, boxes, classes, r.input_size),
        np.asarray(trainable, bool),
        np.asarray(clip_ix, np.int64),
        [x.file for x in recs],
        np.asarray([b_line_label(x) for x in recs], np.int64),
    )
    return rs, rows


def build(r: Recipe, work: Path, cache: Path = DEFAULT_CACHE, log: Any = print) -> Dataset:
    sizes = {"train": r.data.phantom_train, "val": r.data.phantom_val, "test": r.data.phantom_test}
    phantom, summaries = {}, {}
    for split in PHANTOM_SPLITS:
        phantom[split], summaries[split] = _phantom_split(r, split, sizes[split], log)
    real, rows = _real(r, cache, log)
    ds = Dataset(phantom, real)
    save(ds, work / "dataset.npz")
    manifest = {
        # the data folder by name only: where it sat on the training machine says nothing
        "recipe": r.to_dict() | {"data": r.to_dict()["data"] | {"pocus_dir": Path(r.data.pocus_dir).name}},
        "input": r.input_spec().model_dump(),
        "phantom": summaries,
        "real": {
            "source": "pocus_dev (CC BY clips; see DATA_SOURCE.md)",
            "labels": "clip-level B-line label; boxes from the physics-based teacher "
            "(edge/inference/blines.py) under that label (pseudo_labels.py)",
            "clips": rows,
        },
        "sha256": {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in _arrays(ds).items()},
    }
    (work / "dataset.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return ds


def _arrays(ds: Dataset) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    sets = {f"p_{s}": bs for s, bs in ds.phantom.items()} | {"r": ds.real.frames}
    for name, bs in sets.items():
        out |= {
            f"{name}_images": bs.images,
            f"{name}_boxes": bs.boxes,
            f"{name}_classes": bs.classes,
            f"{name}_offsets": bs.offsets,
        }
    return out | {"r_trainable": ds.real.trainable, "r_clip": ds.real.clip, "r_b_lines": ds.real.b_lines}


def save(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **_arrays(ds), r_files=np.array(ds.real.files))  # type: ignore[arg-type]  # numpy stubs
    tmp.replace(path)


def load(path: Path) -> Dataset:
    with np.load(path) as z:

        def boxset(n: str) -> BoxSet:
            return BoxSet(z[f"{n}_images"], z[f"{n}_boxes"], z[f"{n}_classes"], z[f"{n}_offsets"])

        phantom = {s: boxset(f"p_{s}") for s in PHANTOM_SPLITS}
        real = RealSet(
            boxset("r"), z["r_trainable"], z["r_clip"], [str(f) for f in z["r_files"]], z["r_b_lines"]
        )
    return Dataset(phantom, real)
