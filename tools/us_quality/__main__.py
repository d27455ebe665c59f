"""``python -m tools.us_quality [all|split|train|quantize|evaluate|publish|bundle] --data DIR --out DIR``.

``all`` (the default) runs every step: split, train, quantize, evaluate, publish, and bundles the
demo clip into ``edge/assets/clips``. ``--tiny`` runs the whole chain on a few frames for one
epoch into a temporary folder (a smoke test, < 60 s), and never touches the repo.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tools.modelkit.pocus import DEFAULT_CACHE, FRAME_STEP, load_labels
from tools.us_quality.data import ClipData, load_clips, split_by_clip

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "models" / "us-quality"
DEFAULT_ASSETS = REPO / "edge" / "assets" / "clips"
BUNDLED_CLIPS = ("convex/Reg_Image_182106_crop.mp4",)  # pinned to the test split: the demo shows unseen data
STEPS = ("all", "split", "train", "quantize", "evaluate", "publish", "bundle")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.us_quality", description=__doc__)
    p.add_argument("step", nargs="?", default="all", choices=STEPS)
    p.add_argument("--data", type=Path, default=Path("/work/shared/data/pocus_dev"))
    p.add_argument("--out", type=Path, default=None, help=f"model folder (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="a few frames, 1 epoch, output to a temp folder")
    p.add_argument("--work", type=Path, default=None, help="checkpoint folder (default: a temp folder)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="decoded-frame cache")
    p.add_argument("--assets", type=Path, default=DEFAULT_ASSETS, help="where 'bundle' copies the demo clip")
    return p.parse_args(argv)


def _split(args: argparse.Namespace, out: Path) -> dict[str, list[str]]:
    path = out / "split.json"
    if args.step not in ("all", "split") and path.exists():
        return json.loads(path.read_text())["splits"]
    splits = split_by_clip(load_labels(args.data), args.seed, pinned_test=BUNDLED_CLIPS)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "seed": args.seed,
        "rule": "whole clips (whole patients where the file name tells: Reg_patN) per split; "
        "~22% of each probe's videos to test, ~15% to val, stratified by clinical label; "
        "stills to train; the bundled demo clip pinned to test",
        "pinned_test": list(BUNDLED_CLIPS),
        "splits": splits,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return splits


def _clips(args: argparse.Namespace, files: list[str], limit: int | None) -> list[ClipData]:
    if limit is not None:  # tiny: the shortest few clips, to decode quickly
        sizes = {f: (args.data / f).stat().st_size for f in files}
        files = sorted(files, key=lambda f: sizes[f])[:limit]
    clips = load_clips(args.data, files, FRAME_STEP, args.cache)
    if limit is not None:
        for c in clips:
            c.frames, c.shadow = c.frames[:4], c.shadow[:4]
    return clips


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    t0 = time.time()
    out = args.out or (Path(tempfile.mkdtemp(prefix="us-quality-tiny-")) if args.tiny else DEFAULT_OUT)
    work = args.work or (out / "work" if args.tiny else Path(tempfile.gettempdir()) / "us_quality_work")
    limit = 2 if args.tiny else None
    splits = _split(args, out)
    print(f"output: {out}", flush=True)
    step = args.step

    if step in ("all", "train"):
        from tools.us_quality.train import TrainConfig, train

        cfg = TrainConfig(seed=args.seed)
        if args.tiny:
            cfg = TrainConfig(
                seed=args.seed,
                epochs=1,
                pool_size=60,
                val_frames_per_clip=2,
                phantom_scenes=12,
                phantom_val_scenes=6,
                phantom_per_batch=8,
            )
        train(cfg, _clips(args, splits["train"], limit), _clips(args, splits["val"], limit), out, work)
    if step in ("all", "quantize"):
        from tools.us_quality.quantize import quantize

        quantize(
            out,
            _clips(args, splits["train"], limit),
            _clips(args, splits["val"], limit),
            args.seed,
            n_calib=20 if args.tiny else 300,
            val_frames_per_clip=2 if args.tiny else 16,
            phantom_val_scenes=6 if args.tiny else 200,
        )
    if step in ("all", "evaluate"):
        from tools.us_quality.evaluate import evaluate, summary

        m = evaluate(
            out,
            _clips(args, splits["test"], limit),
            args.seed,
            frames_per_clip=2 if args.tiny else 40,
            latency_runs=20 if args.tiny else 1000,
            phantom_scenes=17 if args.tiny else 400,
            tour_fps=0.25 if args.tiny else 2.0,
        )
        print(summary(m), flush=True)
    if step in ("all", "publish"):
        from tools.us_quality.publish import publish

        publish(
            out,
            args.data,
            splits,
            args.seed,
            tiny=args.tiny,
            wall_s=time.time() - t0 if step == "all" else None,
        )
    if step in ("all", "bundle") and not args.tiny:
        from tools.us_quality.publish import bundle_clips

        bundle_clips(args.data, args.assets, BUNDLED_CLIPS, splits)
    print(f"done in {time.time() - t0:.0f} s: {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
