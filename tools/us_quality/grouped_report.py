"""Figures with 95% intervals from a leave-one-source-out run (``grouped_cv``), for logs and the card.

Per source: the share of untouched frames called ``diagnostic``, with a bootstrap interval that
resamples the source's clips (Wilson over frames for a one-clip source, marked ``*``). Pooled over
all held-out sources: each class's recall on rendered samples, with an interval that resamples
sources (the unit that varies between scanners), and the worst source's recall.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tools.us_quality import LABELS
from tools.us_quality.sources import DARK_VARIANTS, cluster_share, share_cell

FORM_NAMES = {"fp32": "FP32", "int8_cpu": "INT8 CPU", "int8": "INT8 portable"}


def by_source(res: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in res["clips"].values():
        out.setdefault(row["source"], []).append(row)
    return dict(sorted(out.items()))


def _hits(rows: list[dict], form: str, variant: str) -> list[np.ndarray]:
    return [
        np.arange(r["frames"]) < r[form]["untouched_diagnostic"][variant] for r in rows
    ]  # k of n as a boolean vector: only the count matters to the interval


def untouched(res: dict, form: str, variant: str = "as is") -> dict[str, dict]:
    return {s: cluster_share(_hits(rows, form, variant)) for s, rows in by_source(res).items()}


def recall(res: dict, form: str, label: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """Pooled recall of ``label`` on rendered held-out samples, CI resampling sources; worst source."""
    src = by_source(res)
    k = np.array([sum(r[form]["rendered"][label][0] for r in rows) for rows in src.values()], float)
    n = np.array([sum(r[form]["rendered"][label][1] for r in rows) for rows in src.values()], float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(k), size=(n_boot, len(k)))
    boots = k[idx].sum(1) / np.maximum(n[idx].sum(1), 1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    worst = int(np.argmin(k / np.maximum(n, 1)))
    return {
        "recall": float(k.sum() / max(n.sum(), 1)),
        "ci": [float(lo), float(hi)],
        "n": int(n.sum()),
        "worst_source": list(src)[worst],
        "worst": float(k[worst] / max(n[worst], 1)),
    }


def untouched_table(res: dict, forms: tuple[str, ...] = ("fp32", "int8_cpu", "int8")) -> str:
    lines = [
        "| source | clips | frames | " + " | ".join(FORM_NAMES[f] for f in forms) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(forms),
    ]
    tabs = {f: untouched(res, f) for f in forms}
    for s, rows in by_source(res).items():
        cells = [share_cell(tabs[f][s]) for f in forms]
        lines.append(f"| {s} | {len(rows)} | {sum(r['frames'] for r in rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def darker_table(res: dict, form: str = "int8_cpu") -> str:
    lines = [
        "| source | " + " | ".join(DARK_VARIANTS) + " |",
        "| --- |" + " ---: |" * len(DARK_VARIANTS),
    ]
    tabs = {v: untouched(res, form, v) for v in DARK_VARIANTS}
    for s in by_source(res):
        cells = [
            f"{tabs[v][s]['share']:.3f} [{tabs[v][s]['ci'][0]:.2f}, {tabs[v][s]['ci'][1]:.2f}]"
            for v in DARK_VARIANTS
        ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def recall_table(res: dict, forms: tuple[str, ...] = ("fp32", "int8_cpu", "int8")) -> str:
    lines = [
        "| class (rendered, held-out sources) | n | "
        + " | ".join(f"{FORM_NAMES[f]} [95% CI]; worst source" for f in forms)
        + " |",
        "| --- | ---: |" + " --- |" * len(forms),
    ]
    for lab in LABELS:
        rs = {f: recall(res, f, lab) for f in forms}
        cells = [
            f"{r['recall']:.3f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]; {r['worst']:.3f}" for r in rs.values()
        ]
        name = f"{lab} (under random looks)" if lab == "diagnostic" else lab
        lines.append(f"| {name} | {rs[forms[0]]['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(res: dict) -> str:
    parts = [
        "Untouched frames called diagnostic, per held-out source:\n" + untouched_table(res),
        "Darker renderings (INT8 CPU):\n" + darker_table(res),
        "Recall per class:\n" + recall_table(res),
    ]
    if has_probabilities(res):
        parts.append("Operating points (INT8 CPU, fault_min_confidence):\n" + operating_table(res))
    return "\n\n".join(parts)


def pooled_untouched(res: dict, form: str, variant: str = "as is", n_boot: int = 2000, seed: int = 0) -> dict:
    """Untouched frames called diagnostic over all held-out sources, each source weighted equally
    (a source's own share, averaged), with an interval resampling sources; and the worst source."""
    tab = untouched(res, form, variant)
    shares = np.array([r["share"] for r in tab.values()])
    rng = np.random.default_rng(seed)
    boots = shares[rng.integers(0, len(shares), size=(n_boot, len(shares)))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    worst = int(np.argmin(shares))
    return {
        "mean_of_sources": float(shares.mean()),
        "ci": [float(lo), float(hi)],
        "worst_source": list(tab)[worst],
        "worst": float(shares[worst]),
        "sources": len(shares),
    }


def frame_share(res: dict, form: str = "int8_cpu", variant: str = "as is") -> float:
    """Untouched frames called ``diagnostic`` over all held-out frames: pooled by frame, so a source
    weighs its frames (the headline's mean of sources weighs every source alike)."""
    rows = res.get("clips", {}).values()
    n = sum(r["frames"] for r in rows)
    return sum(r[form]["untouched_diagnostic"][variant] for r in rows) / n if n else float("nan")


def int8_gap(res: dict) -> dict[str, float]:
    """What each INT8 form loses against FP32 on the headline figures (0..1; negative: it gains): the
    most over the mean of the sources' untouched shares and each class's pooled recall. The publish
    gate refuses a loss over 1 point, as the lung detector's does."""
    out = {}
    for form in ("int8", "int8_cpu"):
        ref = pooled_untouched(res, "fp32")["mean_of_sources"]
        losses = [ref - pooled_untouched(res, form)["mean_of_sources"]]
        losses += [recall(res, "fp32", lab)["recall"] - recall(res, form, lab)["recall"] for lab in LABELS]
        out[form] = float(max(losses))
    return out


def int8_source_gap(res: dict) -> dict[str, float]:
    """The largest difference of each INT8 form from FP32 in any one source's untouched share."""
    ref = untouched(res, "fp32")
    return {
        form: float(max(abs(r["share"] - ref[s]["share"]) for s, r in untouched(res, form).items()))
        for form in ("int8", "int8_cpu")
    }


OPERATING_POINTS = (0.0, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8)


def has_probabilities(res: dict, form: str = "int8_cpu") -> bool:
    """Whether the run kept per-frame probabilities (runs before they were recorded did not)."""
    rows = list(res.get("clips", {}).values())
    return bool(rows) and all("untouched_fault_p" in r[form] and "rendered_top" in r[form] for r in rows)


def _per_form(res: dict, needs: tuple[str, ...], redo: Callable[[dict], dict]) -> dict[str, dict]:
    """The run's clips with each form that holds every key in ``needs`` replaced by ``redo(form)``."""
    clips = {}
    for name, row in res["clips"].items():
        row = dict(row)
        for form in FORM_NAMES:
            r = row.get(form)
            if r and all(k in r for k in needs):
                row[form] = redo(r)
        clips[name] = row
    return clips


def at_threshold(res: dict, t: float) -> dict:
    """The run's figures as the runtime gives them at ``fault_min_confidence`` = ``t``: every form
    with per-frame probabilities gets its counts (untouched ``diagnostic`` per variant, rendered
    recall and confusion) again from them, a fault under ``t`` called ``diagnostic`` (0: the arg-max)."""
    n = len(LABELS)

    def redo(r: dict) -> dict:
        conf = np.zeros(n * n, int)
        for y, k, pk in r["rendered_top"]:
            conf[y * n + (k if k == 0 or pk >= t else 0)] += 1
        return {
            **r,
            "untouched_diagnostic": {
                v: int(sum(1 for p in ps if p == 0 or p < t)) for v, ps in r["untouched_fault_p"].items()
            },
            "rendered": {
                lab: [int(conf[i * n + i]), int(conf[i * n : (i + 1) * n].sum())]
                for i, lab in enumerate(LABELS)
            },
            "rendered_confusion": conf.tolist(),
        }

    clips = _per_form(res, ("untouched_fault_p", "rendered_top"), redo)
    return {**res, "clips": clips, "fault_min_confidence": t}


def has_all_probabilities(res: dict, form: str = "int8_cpu") -> bool:
    """Whether the run kept every class's probability per frame (runs from 2026-12-07 on)."""
    rows = list(res.get("clips", {}).values())
    return bool(rows) and all("untouched_probs" in r[form] and "rendered_probs" in r[form] for r in rows)


def diagnostic_floor_rule(res: dict, t: float) -> dict:
    """The run as another decision rule reads it: a fault is called when ``diagnostic`` is under
    ``t`` (the most likely fault named), rather than only when one fault reaches the floor. The
    result's ``untouched_fault_p`` / ``rendered_top`` hold 1.0 for a fault called, 0 otherwise, so
    ``at_threshold`` (any floor in (0, 1]) and the reports read it unchanged."""

    def call(p: list[float]) -> int:
        return 0 if p[0] >= t else 1 + int(np.argmax(p[1:]))

    def redo(r: dict) -> dict:
        calls = map(call, r["rendered_probs"])
        return {
            **r,
            "untouched_fault_p": {
                v: [1.0 if call(p) else 0.0 for p in ps] for v, ps in r["untouched_probs"].items()
            },
            "rendered_top": [
                [y, k, 1.0 if k else 0.0] for (y, _, _), k in zip(r["rendered_top"], calls, strict=True)
            ],
        }

    clips = _per_form(res, ("untouched_probs", "rendered_probs"), redo)
    return {**res, "clips": clips, "decision_rule": f"fault when diagnostic < {t:g}"}


def at_operating_point(res: dict, form: str, t: float) -> tuple[dict[str, float], dict[str, float]]:
    """(per source: share of untouched frames called ``diagnostic``; per fault: pooled recall on the
    rendered samples) at ``fault_min_confidence`` = ``t`` (0: the arg-max): point estimates."""
    g = at_threshold(res, t)
    kept: dict[str, list[int]] = {}
    for row in g["clips"].values():
        s = kept.setdefault(row["source"], [0, 0])
        s[0] += row[form]["untouched_diagnostic"]["as is"]
        s[1] += row["frames"]
    shares = {src: k / max(m, 1) for src, (k, m) in sorted(kept.items())}
    recalls = {}
    for lab in LABELS[1:]:
        hit, n = (sum(row[form]["rendered"][lab][i] for row in g["clips"].values()) for i in (0, 1))
        recalls[lab] = hit / max(n, 1)
    return shares, recalls


def operating_table(res: dict, form: str = "int8_cpu", points: tuple[float, ...] = OPERATING_POINTS) -> str:
    """One row per ``fault_min_confidence``: the untouched share (mean of sources, worst source) and
    each fault's recall, out of fold. Point estimates: the intervals are the headline's."""
    faults = LABELS[1:]
    lines = [
        "| fault_min_confidence | untouched `diagnostic`, mean of sources | worst source | "
        + " | ".join(f"{f} recall" for f in faults)
        + " |",
        "| ---: | ---: | ---: |" + " ---: |" * len(faults),
    ]
    for t in points:
        shares, recalls = at_operating_point(res, form, t)
        worst = min(shares, key=lambda s: shares[s])
        name = "0 (arg-max)" if t == 0 else f"{t:g}"
        lines.append(
            f"| {name} | {np.mean(list(shares.values())):.3f} | {shares[worst]:.3f} ({worst}) | "
            + " | ".join(f"{recalls[f]:.3f}" for f in faults)
            + " |"
        )
    return "\n".join(lines)
