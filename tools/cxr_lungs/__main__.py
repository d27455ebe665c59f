"""``python -m tools.cxr_lungs [STEP] --data PATH``: the lung-field detector recipe.

Steps (each reads what the earlier ones left in ``--work``): ``cv`` (grouped k-fold by patient: the
whole chain per fold, every film scored out of fold, into ``cv.json``; then the fold models on their
films cut, rotated, darker and brighter, into ``stress.json``), ``final`` (the chain on every
film: the published model), ``publish`` (the gate: pruning or INT8 losing more than 1 point of the
out-of-fold mAP50 against FP32 refuses, exit 3; then ``--out`` with manifest, card, attribution) and
``all``. ``--tiny`` runs everything at smoke-test size into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from tools.cxr_lungs import cv, stress
from tools.cxr_lungs.data import load
from tools.cxr_lungs.publish import publish
from tools.cxr_lungs.train import Schedule
from tools.cxr_lungs.variants import build
from tools.modelkit.publish_gate import GateRefused
from tools.modelkit.training import set_determinism

STEPS = ("cv", "final", "publish", "all")
TINY = Schedule(steps=4, batch=4, finetune_steps=2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.cxr_lungs", description=__doc__.splitlines()[0])
    ap.add_argument("step", nargs="?", default="all", choices=STEPS)
    ap.add_argument("--data", type=Path, required=True, help="the cxr_dev folder (see its SOURCE.md)")
    ap.add_argument("--out", type=Path, default=Path("models/cxr-lungs"))
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cxr_lungs_work")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cxr_lungs_cache")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=Schedule.steps)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--tiny", action="store_true", help="smoke test: a few steps, 2 folds, into a temporary folder"
    )
    a = ap.parse_args(argv)
    set_determinism(a.seed, a.threads)
    torch.use_deterministic_algorithms(False)  # the pruner's index ops have no deterministic CPU kernel flag
    s = TINY if a.tiny else Schedule(steps=a.steps)
    folds, n_boot = (2, 50) if a.tiny else (a.folds, 2000)
    if a.tiny and a.out == Path("models/cxr-lungs"):
        a.out = Path(tempfile.mkdtemp(prefix="cxr-lungs-tiny-"))
    films = load(a.data, a.cache)
    print(f"{len(films)} films of {len(set(films.patients))} patients")
    if a.step in ("cv", "all"):
        r = cv.run(films, folds, s, a.seed, a.work, n_boot)
        print(json.dumps({v: r["variants"][v]["map50"] for v in r["variants"]}, indent=1))
        stress.run(films, folds, a.seed, a.work)
    if a.step in ("final", "all"):
        build(films, np.arange(len(films)), s, a.seed, a.work / "final")
    if a.step in ("publish", "all"):
        try:
            publish(a.data, a.work, a.out, films, tiny=a.tiny)
        except GateRefused as exc:
            print(f"publish refused: {exc}")
            return 3
        print(f"published {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
