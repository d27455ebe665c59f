"""``python -m tools.lung_detector STEP [--recipe F] [--work DIR] [--out DIR] [--tiny]``.

Steps: ``dataset``, ``train``, ``prune``, ``quantize``, ``evaluate``, ``loso``, ``publish``, or ``all`` (the
default: every step in order, from the recipe file). Each step reads what the earlier ones left
in the work folder, so one step can be re-run alone. ``--tiny`` runs the whole chain at smoke-test
size into a temporary folder and never touches ``models/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tools.lung_detector.recipe import DEFAULT_RECIPE, Recipe, load_recipe, tiny
from tools.modelkit.pocus import DEFAULT_CACHE

REPO = Path(__file__).resolve().parents[2]
STEPS = ("all", "dataset", "train", "prune", "quantize", "evaluate", "loso", "publish")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.lung_detector",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("step", nargs="?", default="all", choices=STEPS)
    p.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    p.add_argument("--data", type=Path, help="pocus_dev folder (overrides the recipe's data.pocus_dir)")
    p.add_argument("--work", type=Path, help="intermediate files (default: /tmp/lung_detector_work)")
    p.add_argument("--out", type=Path, help="model folder (default: models/<recipe name>)")
    p.add_argument("--cache", type=Path, help=f"decoded-clip cache (default: {DEFAULT_CACHE})")
    p.add_argument("--tiny", action="store_true", help="smoke-test size, into a temporary folder")
    return p.parse_args(argv)


def _log(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    from dataclasses import replace

    args = _args(argv)
    t0 = time.time()
    r: Recipe = load_recipe(args.recipe)
    if args.data:
        r = replace(r, data=replace(r.data, pocus_dir=str(args.data.resolve())))
    if args.tiny:
        r = tiny(r)
    base = Path(tempfile.mkdtemp(prefix="lung-detector-tiny-")) if args.tiny else None
    work = args.work or (base / "work" if base else Path(tempfile.gettempdir()) / "lung_detector_work")
    out = args.out or (base / "model" if base else REPO / "models" / r.name)
    work.mkdir(parents=True, exist_ok=True)
    (work / "recipe.json").write_text(json.dumps(r.to_dict(), indent=2) + "\n")
    step = args.step
    _log(f"recipe {r.source} seed {r.seed}; work {work}; out {out}")

    from tools.lung_detector import pipeline

    cache = {"cache": args.cache} if args.cache else {}
    if step in ("all", "dataset"):
        pipeline.dataset(r, work, _log, **cache)
    if step in ("all", "train"):
        pipeline.train(r, work, _log)
    if step in ("all", "prune"):
        pipeline.prune(r, work, _log)
    if step in ("all", "quantize"):
        pipeline.quantize(r, work, _log)
    if step in ("all", "evaluate"):
        pipeline.evaluate(r, work, _log)
    if step in ("all", "loso"):
        pipeline.loso(r, work, _log)
    if step in ("all", "publish"):
        ok = pipeline.publish(
            r, work, out, _log, tiny=args.tiny, wall_s=time.time() - t0 if step == "all" else None
        )
        if not ok:
            return 3
    _log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
