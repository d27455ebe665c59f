"""Realism check: run the bundled us-quality model on phantom frames and print a confusion matrix.

    python -m tools.phantom.realism [--n 50] [--model models/us-quality]

Each case is a scenario whose expected quality label is known (normal -> diagnostic, lung findings of
the virtual probe's tour (B-lines, consolidation, effusion; convex and linear) -> diagnostic, probe
lifted -> no_contact, rib shadow / partial contact -> shadow, gain up -> gain_high, gain down ->
gain_low). ``--precision`` picks the model file (int8 loads the CPU form on the CPU, as the runtime does).
Frames are taken from several seeds so the speckle, TGC and anatomy vary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.inference.model import LoadedModel
from firmware_bridge.phantom import frames, single

CASES: list[tuple[str, str, str, tuple[str, ...], dict[str, Any]]] = [
    ("lung normal", "diagnostic", "lung", (), {}),
    ("abdomen normal", "diagnostic", "abdomen", (), {}),
    ("lung 2 b-lines", "diagnostic", "lung", (), {"b_line_count": 2}),
    ("lung 4 b-lines", "diagnostic", "lung", (), {"b_line_count": 4}),
    ("lung 6 b-lines", "diagnostic", "lung", (), {"b_line_count": 6, "b_line_width_mm": 3.0}),
    ("lung 4 b-l. lin.", "diagnostic", "lung", (), {"b_line_count": 4, "probe": "linear"}),
    ("consolidation", "diagnostic", "lung", (), {"consolidation": True, "b_line_count": 1}),
    ("effusion", "diagnostic", "lung", (), {"effusion": True, "effusion_mm": 30.0}),
    ("probe lifted", "no_contact", "lung", ("no_contact",), {}),
    ("rib shadow", "shadow", "lung", ("rib_shadow",), {}),
    ("partial contact", "shadow", "abdomen", ("partial_contact",), {}),
    ("gain up lung", "gain_high", "lung", ("gain_up",), {}),
    ("gain up abdomen", "gain_high", "abdomen", ("gain_up",), {}),
    ("gain down lung", "gain_low", "lung", ("gain_down",), {}),
    ("gain down abdo", "gain_low", "abdomen", ("gain_down",), {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--model", type=Path, default=Path("models/us-quality"))
    ap.add_argument("--per-seed", type=int, default=5, help="frames per seed (one scene per seed)")
    ap.add_argument("--precision", default="auto", help="fp32 / int8 / auto (the default precision)")
    a = ap.parse_args()
    model = LoadedModel(a.model, precision=a.precision)
    labels = list(model.manifest.labels)
    total = correct = 0
    rows = []
    for name, want, preset, events, params in CASES:
        counts = dict.fromkeys(labels, 0)
        for seed in range(a.n // a.per_seed):
            scenario = single(preset, events, duration_s=a.per_seed / 10, **params)
            for img, _ in frames(scenario, fps=10, seed=seed):
                q = model.infer(img).quality
                assert q is not None
                counts[q.label] += 1
        n = sum(counts.values())
        total, correct = total + n, correct + counts[want]
        rows.append((name, want, counts, counts[want] / max(n, 1)))
    print(f"{'case':16s} {'expected':11s} " + " ".join(f"{lb:>10s}" for lb in labels) + "  accuracy")
    for name, want, counts, acc in rows:
        print(f"{name:16s} {want:11s} " + " ".join(f"{counts[lb]:10d}" for lb in labels) + f"  {acc:7.0%}")
    print(f"overall accuracy: {correct}/{total} = {correct / max(total, 1):.0%}")


if __name__ == "__main__":
    main()
