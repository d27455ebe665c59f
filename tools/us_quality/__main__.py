"""``python -m tools.us_quality [all|split|train|quantize|grouped|evaluate|publish|bundle] --data DIR``.

``all`` (the default) runs every step: split (every clip trains the published model; the file also
lists the grouped folds), train, quantize, grouped (leave-one-source-out cross-validation of the
same recipe: the card's headline figures), evaluate (phantom, tour, other vendors, latency),
publish, and bundles the demo clip into ``edge/assets/clips``. ``--tiny`` runs the whole chain on a
few frames for a few steps into a temporary folder (a smoke test), and never touches the repo.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tools.modelkit.pocus import DEFAULT_CACHE, EXCLUDED, FRAME_STEP, load_labels
from tools.us_quality.data import ClipData, load_clips

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "models" / "us-quality"
DEFAULT_ASSETS = REPO / "edge" / "assets" / "clips"
BUNDLED_CLIPS = ("convex/Reg_Image_182106_crop.mp4",)
STEPS = ("all", "split", "train", "quantize", "grouped", "evaluate", "publish", "bundle")
GROUPED_FILE = "grouped_cv.json"


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.us_quality", description=__doc__)
    p.add_argument("step", nargs="?", default="all", choices=STEPS)
    p.add_argument("--data", type=Path, required=True, help="the pocus_dev folder (see its SOURCE.md)")
    p.add_argument("--vendors", type=Path, default=None, help="other vendors' files, scored in 'evaluate'")
    p.add_argument("--out", type=Path, default=None, help=f"model folder (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="a few frames, a few steps, output to a temp folder")
    p.add_argument("--work", type=Path, default=None, help="checkpoint folder (default: a temp folder)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="decoded-frame cache")
    p.add_argument("--assets", type=Path, default=DEFAULT_ASSETS, help="where 'bundle' copies the demo clip")
    return p.parse_args(argv)


def _split(args: argparse.Namespace, out: Path) -> dict[str, list[str]]:
    path = out / "split.json"
    if args.step not in ("all", "split") and path.exists():
        return json.loads(path.read_text())["splits"]
    files = sorted(r.file for r in load_labels(args.data) if r.file not in EXCLUDED)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "seed": args.seed,
        "rule": "every clip and still trains the published model; its figures on real data come from "
        f"leave-one-source-out cross-validation of the same recipe ({GROUPED_FILE})",
        "splits": {"train": files},
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc["splits"]


def _clips(args: argparse.Namespace, files: list[str]) -> list[ClipData]:
    clips = load_clips(args.data, files, FRAME_STEP, args.cache)
    if args.tiny:  # a few frames per clip
        for c in clips:
            c.frames, c.shadow = c.frames[:4], c.shadow[:4]
    return clips


def main(argv: list[str] | None = None) -> int:
    from tools.us_quality.fit import FitConfig
    from tools.us_quality.train import TrainConfig

    args = _args(argv)
    t0 = time.time()
    out = args.out or (Path(tempfile.mkdtemp(prefix="us-quality-tiny-")) if args.tiny else DEFAULT_OUT)
    work = args.work or (out / "work" if args.tiny else Path(tempfile.gettempdir()) / "us_quality_work")
    splits = _split(args, out)
    print(f"output: {out}", flush=True)
    step = args.step
    cfg = TrainConfig(seed=args.seed, fit=FitConfig(seed=args.seed))
    if args.tiny:
        cfg = TrainConfig(
            seed=args.seed,
            frames_per_clip=2,
            still_repeats=1,
            phantom_scenes=12,
            fit=FitConfig(seed=args.seed, steps=4),
        )
    clips: list[ClipData] = []
    if step in ("all", "train", "quantize", "grouped"):
        clips = _clips(args, splits["train"])

    if step in ("all", "train"):
        from tools.us_quality.train import train

        train(cfg, clips, out, work)
    if step in ("all", "quantize"):
        from tools.us_quality.quantize import quantize

        quantize(
            out,
            clips,
            args.seed,
            n_calib=20 if args.tiny else 300,
            val_frames_per_clip=1 if args.tiny else 4,
            phantom_val_scenes=6 if args.tiny else 200,
        )
    if step in ("all", "grouped"):
        from tools.us_quality.grouped_cv import CVConfig, run
        from tools.us_quality.grouped_report import summary

        gcfg = CVConfig(cfg, test_frames_per_clip=1, calib_samples=20) if args.tiny else CVConfig(cfg)
        res = run(clips, gcfg)
        (out / GROUPED_FILE).write_text(json.dumps(res, separators=(",", ":")) + "\n")
        if res["clips"]:
            print(summary(res), flush=True)
    if step in ("all", "evaluate"):
        from tools.us_quality.evaluate import evaluate
        from tools.us_quality.evaluate import summary as eval_summary

        m = evaluate(
            out,
            args.seed,
            latency_runs=20 if args.tiny else 1000,
            phantom_scenes=17 if args.tiny else 400,
            tour_fps=0.25 if args.tiny else 2.0,
            vendors=args.vendors,
        )
        print(eval_summary(m), flush=True)
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
