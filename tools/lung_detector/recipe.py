"""The recipe: every knob of the toolchain in one TOML file, so a run can be repeated exactly.

``tools/lung_detector/recipe.toml`` is the bundled model's recipe. ``tiny()`` shrinks any recipe
to a smoke-test size that runs in about a minute.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import numpy as np

from edge.inference.manifest import InputSpec, Normalize

DEFAULT_RECIPE = Path(__file__).with_name("recipe.toml")
NORMALIZE = Normalize(scale=1.0 / 255.0, mean=(0.5,), std=(0.25,))  # written to the manifest


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 fitted frames (..., H, W) -> float32 (..., 1, H, W): the manifest's normalization,
    for training, calibration and evaluation alike."""
    x = images.astype(np.float32) / np.float32(1.0 / NORMALIZE.scale)
    return ((x - np.float32(NORMALIZE.mean[0])) / np.float32(NORMALIZE.std[0]))[..., None, :, :]


@dataclass(frozen=True)
class DataRecipe:
    pocus_dir: str = "../shared/data/pocus_dev"  # relative to the recipe file
    phantom_train: int = 3000
    phantom_val: int = 300
    phantom_test: int = 600
    real_frames_per_clip: int = 40  # spread evenly over each labelled clip


@dataclass(frozen=True)
class TrainRecipe:
    steps: int = 700
    batch: int = 32
    real_per_batch: int = 8  # of each batch, weakly labelled real frames
    lr: float = 3e-3
    weight_decay: float = 5e-4
    threads: int = 2


@dataclass(frozen=True)
class PruneRecipe:
    flops_reduction: float = 0.45  # at least this share of FLOPs removed
    finetune_steps: int = 300
    lr: float = 1e-3


@dataclass(frozen=True)
class QuantizeRecipe:
    calib_frames: int = 256
    max_drop: float = 0.01  # mAP50 (0..1) INT8 may lose against FP32 on the phantom val set


@dataclass(frozen=True)
class EvalRecipe:
    min_confidence: float = 0.25  # detections below are not counted (the manifest's threshold)
    # Detections under this are "review" (dashed, not in the count shown); "auto": the score cut
    # that makes the INT8 models' per-frame B-line count closest to the truth on the phantom val set.
    review_below: float | str = "auto"
    latency_runs: int = 300
    max_map_drop: float = 0.01  # the publish gate: INT8 and pruned vs FP32, mAP50 (0..1)


@dataclass(frozen=True)
class Recipe:
    name: str = "lung-detector"
    version: str = "1.0.0"
    seed: int = 0
    input_size: int = 128  # scan lines x depth samples
    labels: tuple[str, ...] = ("b_line", "pleural_line", "consolidation", "effusion")
    # The runtime's classical stages after the model, written to the manifest (Manifest.postprocess);
    # the leave-one-source-out figures are reported with and without them.
    postprocess: tuple[str, ...] = ()
    data: DataRecipe = field(default_factory=DataRecipe)
    train: TrainRecipe = field(default_factory=TrainRecipe)
    prune: PruneRecipe = field(default_factory=PruneRecipe)
    quantize: QuantizeRecipe = field(default_factory=QuantizeRecipe)
    evaluate: EvalRecipe = field(default_factory=EvalRecipe)
    source: str = ""  # the file it was read from

    def input_spec(self) -> InputSpec:
        """The sector, normalised, in scan lines: a B-line is a vertical column on any probe."""
        s = self.input_size
        return InputSpec(
            name="images",
            shape=(1, 1, s, s),
            color="gray",
            resize="stretch",
            view="scanlines",
            normalize=NORMALIZE,
        )

    def pocus_dir(self) -> Path:
        p = Path(self.data.pocus_dir)
        return p if p.is_absolute() or not self.source else (Path(self.source).parent / p).resolve()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _section(cls: type, raw: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def load_recipe(path: Path = DEFAULT_RECIPE) -> Recipe:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    subs = {
        "data": DataRecipe,
        "train": TrainRecipe,
        "prune": PruneRecipe,
        "quantize": QuantizeRecipe,
        "evaluate": EvalRecipe,
    }
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        if key in subs:
            kw[key] = _section(subs[key], value, f"{path}: [{key}]")
        elif key in {f.name for f in fields(Recipe)} - {"source"}:
            kw[key] = tuple(value) if isinstance(value, list) else value
        else:
            raise ValueError(f"{path}: unknown key {key!r}")
    return Recipe(**kw, source=str(path.resolve()))


def tiny(r: Recipe) -> Recipe:
    """The same chain at smoke-test size: a few frames, a few steps."""
    return replace(
        r,
        data=replace(
            r.data,
            phantom_train=24,
            phantom_val=8,
            phantom_test=8,
            real_frames_per_clip=2,
        ),
        train=replace(r.train, steps=3, batch=8, real_per_batch=2),
        prune=replace(r.prune, finetune_steps=2),
        quantize=replace(r.quantize, calib_frames=8),
        evaluate=replace(r.evaluate, latency_runs=5),
    )
