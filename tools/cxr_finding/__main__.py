"""``python -m tools.cxr_finding [STEP] --data PATH``: the chest finding recipe (normal vs pneumonia).

Steps (each reads what the earlier ones left in ``--work``): ``cv`` (grouped k-fold by patient, the
whole chain per fold, thresholds fixed on held-back training patients, into ``cv.json`` and
``oof.npz``), ``final`` (the published model: the chain on all patients but a tenth held back for its
decision threshold and the INT8 check), ``check`` (where the heatmap looks, with ``--lungs``, a
cxr-lungs model folder; and the adult films of ``--adult``, a cxr_dev folder), ``publish`` (the gate:
pruning or INT8 losing more than 1 point of out-of-fold AUC refuses, exit 3; then ``--out``) and ``all``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from tools.cxr_finding import cv
from tools.cxr_finding.chain import build
from tools.cxr_finding.data import load
from tools.cxr_finding.ood import score_adults
from tools.cxr_finding.publish import publish
from tools.cxr_finding.review import heatmap_check, review_band
from tools.cxr_finding.train import Schedule
from tools.modelkit.patients import patient_folds
from tools.modelkit.publish_gate import GateRefused
from tools.modelkit.training import set_determinism

STEPS = ("cv", "final", "check", "publish", "all")
TINY = Schedule(epochs=0.5, batch=8, finetune_epochs=0.25)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.cxr_finding", description=__doc__.splitlines()[0])
    ap.add_argument("step", nargs="?", default="all", choices=STEPS)
    ap.add_argument("--data", type=Path, required=True, help="the cxr_kermany folder (see its SOURCE.md)")
    ap.add_argument(
        "--lungs", type=Path, help="a cxr-lungs model folder, to box the lung fields for the heatmap check"
    )
    ap.add_argument("--adult", type=Path, help="the cxr_dev folder, scored out of domain")
    ap.add_argument("--out", type=Path, default=Path("models/cxr-finding"))
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cxr_finding_work")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cxr_finding_cache")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=float, default=Schedule.epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--tiny", action="store_true", help="smoke test: a few steps, 2 folds, into a temporary folder"
    )
    a = ap.parse_args(argv)
    set_determinism(a.seed, a.threads)
    torch.use_deterministic_algorithms(False)  # the pruner's index ops
    s = TINY if a.tiny else Schedule(epochs=a.epochs)
    folds = 2 if a.tiny else a.folds
    if a.tiny and a.out == Path("models/cxr-finding"):
        a.out = Path(tempfile.mkdtemp(prefix="cxr-finding-tiny-"))
    films = load(a.data, a.cache)
    a.work.mkdir(parents=True, exist_ok=True)
    print(f"{len(films.files)} films of {len(set(films.patients))} patients")
    if a.step in ("cv", "all"):
        r = cv.run(films, folds, s, a.seed, a.work)
        print(json.dumps({v: r["variants"][v]["auc"] for v in r["variants"]}, indent=1))
    if a.step in ("final", "all"):
        held = patient_folds(films.patients, 10, a.seed + 99, films.labels) == 0
        idx = np.arange(len(films.files))
        build(films, idx[~held], idx[held], s, a.seed, a.work / "final", shift=True)
    if a.step in ("check", "all"):
        z = np.load(a.work / "oof.npz")
        checks = {
            "review": review_band(films, z["p_int8-cpu"], z["t_int8-cpu"]),
            "heatmap": heatmap_check(a.work, films, a.lungs),
        }
        if a.adult is not None:
            d = a.work / "final"
            checks["adult"] = score_adults(
                {v: d / f"{f}.onnx" for v, f in (("fp32", "pruned"), ("int8-cpu", "int8-cpu"))}, a.adult
            )
        (a.work / "checks.json").write_text(json.dumps(checks, indent=2) + "\n")
        print(json.dumps(checks, indent=1)[:3000])
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
