"""``publish``: the gate, then models/cxr-finding (ONNX files, manifest with sha256s, card, attribution).

The published network is the final run's pruned one, its decision threshold folded into its bias
(``train.shift_decision``), with both INT8 forms from it. Its outputs are ``logits`` and ``heatmap``
(the class-activation maps)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from edge.errors import ManifestError
from tools.cxr_finding.card import data_source, model_card
from tools.cxr_finding.data import LABELS, Films
from tools.cxr_finding.review import REVIEW_BELOW
from tools.cxr_finding.view import input_spec
from tools.modelkit.cards import CARD_NAME, write_model_docs
from tools.modelkit.manifest import build_manifest, validate
from tools.modelkit.publish_gate import copy_variants, refuse_drops

NAME = "cxr-finding"
VERSION = "1.0.0"


def gate(cv: dict[str, Any]) -> None:
    refuse_drops(cv["drops"], "out-of-fold AUC")


def publish(data: Path, work: Path, out: Path, films: Films, tiny: bool = False) -> Path:
    cv = json.loads((work / "cv.json").read_text())
    build = json.loads((work / "final" / "build.json").read_text())
    checks = json.loads((work / "checks.json").read_text())
    if not tiny:  # a smoke test's models are untrained: its card says its numbers mean nothing
        gate(cv)
    copy_variants(work / "final", out, NAME)
    spec = input_spec()
    man = build_manifest(
        out / f"{NAME}-fp32.onnx",
        name=NAME,
        version=VERSION,
        task="classification",
        modality=("CR", "DX"),
        description=(
            "Normal vs pneumonia on a frontal chest film, with a class-activation heatmap. Trained on "
            "films of children aged 1-5 from one hospital (Guangzhou); not shown to work on adults, other "
            "hospitals or other detectors. Triage aid for review, not a medical device, not for diagnosis."
        ),
        input_size=spec.hw,
        color="gray",
        layout="NCHW",
        resize="stretch",
        normalize={
            "scale": spec.normalize.scale,
            "mean": list(spec.normalize.mean),
            "std": list(spec.normalize.std),
        },
        labels=LABELS,
        ok_labels=["normal"],
        urgent_labels=None,
        thresholds={"review_below": REVIEW_BELOW},
        files={"int8": out / f"{NAME}-int8.onnx"},
        cpu_files={"int8": out / f"{NAME}-int8-cpu.onnx"},
        default_precision="int8",
        provenance={
            "data": "the cxr_kermany data set: paediatric chest films, Guangzhou (CC BY 4.0; DATA_SOURCE.md)",
            "training_code": "tools/cxr_finding",
            "seed": build["seed"],
            "decision_threshold_folded_into_bias": build["decision_threshold"],
            "pruning": f"{build['prune']['flops_removed']:.1%} of FLOPs removed",
            "created": dt.date.today().isoformat(),
        },
        card=CARD_NAME,
    )
    man["outputs"] = [{"name": "logits", "kind": "logits"}, {"name": "heatmap", "kind": "heatmap"}]
    try:
        validate(man, out)
    except ManifestError as exc:  # the runtime that reads heatmaps is another change
        print(f"WARNING: this runtime's manifest check refuses the heatmap output: {exc}", file=sys.stderr)
    (out / "cv.json").write_text(json.dumps(cv, indent=2) + "\n")
    (out / "checks.json").write_text(json.dumps(checks, indent=2) + "\n")
    (out / "build.json").write_text(json.dumps(build, indent=2) + "\n")
    write_model_docs(
        out,
        man,
        model_card(cv, build, checks, films),
        data_source(),
        smoke_test="2 folds, a few training steps" if tiny else None,
    )
    return out
