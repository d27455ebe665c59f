"""Leave-one-source-out B-line figures on the real clips: the lung detector's headline.

A clip's score is what the runtime shows as its clip-level B-line score: the mean, over the clip's
frames, of the frame's confident B-line count (findings ``b_line`` with confidence at least the
manifest's ``review_below``). Every threshold is fixed on the training folds only
(``tools.modelkit.grouped``), and the figures are reported per source with 95% intervals.

``python -m tools.lung_detector.external --data <pocus_dev> --model models/lung-detector`` scores a
published model (no training: every clip is scored once, each fold's cut is fixed on the scores of
the other sources); ``--teacher`` scores the physics-based teacher the same way.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.inference.model import LoadedModel
from tools.lung_detector.loso import consensus_clip_score
from tools.lung_detector.real_data import subsample
from tools.lung_detector.recipe import Recipe
from tools.lung_detector.scan_input import ScanInput
from tools.modelkit.grouped import (
    GroupedReport,
    b_line_label,
    evaluate_grouped,
    fixed_scores,
    leave_one_source_out,
)
from tools.modelkit.pocus import DEFAULT_CACHE, EXCLUDED, FRAME_STEP, ClipRecord, load_frames, load_labels

FRAMES_PER_CLIP = 60  # evenly spread over the clip (every FRAME_STEP-th frame decoded)


def labelled(records: list[ClipRecord]) -> list[ClipRecord]:
    """The clips whose B-line label is known, less those the recipes exclude (EXCLUDED says why)."""
    return [r for r in records if r.file not in EXCLUDED and b_line_label(r) is not None]


def clip_frames(data: Path, rec: ClipRecord, cache: Path = DEFAULT_CACHE) -> np.ndarray:
    return subsample(load_frames(data, rec, FRAME_STEP, cache), FRAMES_PER_CLIP)


def model_clip_score(model: LoadedModel) -> Callable[[np.ndarray], float]:
    """Mean confident B-line count per frame, as the runtime counts it."""
    cut = model.manifest.thresholds.review_below

    def score(frames: np.ndarray) -> float:
        model.reset_view()  # each clip's imaging area is its own
        counts = [
            sum(1 for f in model.infer(fr).findings if f.label == "b_line" and f.confidence >= cut)
            for fr in frames
        ]
        return float(np.mean(counts))

    return score


def teacher_clip_score(frames: np.ndarray) -> float:
    """Mean count per frame of the consensus stage alone (the teacher), as the runtime shows its
    lines, on the model's scan-line input of each frame (``loso`` counts it the same way)."""
    scan = ScanInput(list(frames), Recipe().input_spec())
    return consensus_clip_score(np.stack([scan(fr) for fr in frames]))


def fixed_scorer_report(
    data: Path, score: Callable[[np.ndarray], float], log: Callable[[str], None] = print
) -> tuple[GroupedReport, dict[str, float]]:
    """Leave-one-source-out for a scorer trained on none of these clips (or trained on all of
    them, which the caller must say): each clip scored once; each fold's cut from the others."""
    recs = labelled(load_labels(data))
    scores: dict[str, float] = {}
    for r in recs:
        scores[r.file] = score(clip_frames(data, r))
        log(f"{r.file}: B-lines {b_line_label(r)}, clip score {scores[r.file]:.2f}")

    report = evaluate_grouped(leave_one_source_out(recs), fixed_scores(scores), b_line_label)
    return report, scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the pocus_dev folder (labels.csv and clips)")
    ap.add_argument("--model", type=Path, help="a model folder (manifest.json)")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--teacher", action="store_true", help="score the physics-based teacher instead")
    ap.add_argument("--json", type=Path, help="write the report's figures here")
    a = ap.parse_args(argv)
    score: Callable[[np.ndarray], float] = teacher_clip_score
    if not a.teacher:
        if a.model is None:
            ap.error("--model or --teacher")
        score = model_clip_score(LoadedModel(a.model, precision=a.precision, backend="onnxruntime"))
    report, scores = fixed_scorer_report(a.data, score)
    print(report.markdown())
    if a.json:
        a.json.write_text(json.dumps({"report": report.to_dict(), "clip_scores": scores}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
