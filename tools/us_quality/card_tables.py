"""The model card's tables that are not the grouped figures: phantom cases and results, the tour,
other vendors' files, size and latency, the quantization choice. Each reads the step files only."""

from __future__ import annotations

from tools.modelkit.cards import figure
from tools.us_quality import LABELS
from tools.us_quality.phantom import CASES

FORMS = ("fp32", "int8_cpu", "int8")


def ranges(params: dict) -> str:
    return ", ".join(
        f"{k} {v[0]:g}-{v[1]:g}" if isinstance(v, tuple) else f"{k} {v:g}" for k, v in params.items()
    )


def phantom_cases() -> str:
    rows = [
        "| case | preset | events | parameters drawn per scene | weight |",
        "| --- | --- | --- | --- | ---: |",
    ]
    for c in CASES:
        params = ", ".join(
            f"{k} {v[0]:g}-{v[1]:g}" if isinstance(v, tuple) else f"{k} {v}" for k, v in c.params.items()
        )
        rows.append(f"| {c.name} | {c.preset} | {', '.join(c.events) or '-'} | {params} | {c.weight:g} |")
    return "\n".join(rows)


def phantom_results(m: dict) -> str:
    ph = {k: m[k]["phantom"] for k in FORMS}
    rows = ["| class | n | FP32 | INT8 CPU | INT8 portable |", "| --- | ---: | ---: | ---: | ---: |"]
    for lab in LABELS:
        cells = [
            f"{ph[k]['per_class'][lab]['recall']:.3f} / {ph[k]['per_class'][lab]['precision']:.3f}"
            for k in FORMS
        ]
        rows.append(f"| {lab} | {ph['fp32']['per_class'][lab]['support']} | " + " | ".join(cells) + " |")
    rows += [
        "",
        "| finding (diagnostic cases) | FP32 | INT8 CPU | INT8 portable |",
        "| --- | ---: | ---: | ---: |",
    ]
    for f in ph["fp32"]["diagnostic_rate_by_finding"]:
        rows.append(
            f"| {f} | " + " | ".join(figure(ph[k]["diagnostic_rate_by_finding"].get(f)) for k in FORMS) + " |"
        )
    rows += ["", f"| case (INT8 CPU labels) | {' | '.join(LABELS)} |", "| --- |" + " ---: |" * len(LABELS)]
    for name, counts in ph["int8_cpu"]["by_case"].items():
        rows.append(f"| {name} | " + " | ".join(str(v) for v in counts) + " |")
    return "\n".join(rows)


def tour(m: dict) -> str:
    ph = {k: m[k]["phantom"] for k in FORMS}
    rows = [
        "| stop | FP32 | INT8 CPU | INT8 portable | INT8 CPU labels |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for st in ph["fp32"]["tour"]["by_stop"]:
        shares = [ph[k]["tour"]["by_stop"][st][0] / max(sum(ph[k]["tour"]["by_stop"][st]), 1) for k in FORMS]
        labels = ", ".join(f"{lab} {n}" for lab, n in zip(LABELS, ph["int8_cpu"]["tour"]["by_stop"][st]) if n)
        rows.append(f"| {st} | " + " | ".join(f"{s:.3f}" for s in shares) + f" | {labels} |")
    return "\n".join(rows)


def vendors(m: dict) -> str:
    if not m.get("vendor_files"):
        return "(not run: `evaluate` was given no `--vendors` folder)"
    rows = [
        f"| file | frames | {' | '.join(LABELS)} (INT8 CPU) | FP32 diagnostic |",
        "| --- | ---: |" + " ---: |" * (len(LABELS) + 1),
    ]
    for name in m["vendor_files"]:
        c, f = m["int8_cpu"]["vendors"][name], m["fp32"]["vendors"][name]
        rows.append(f"| `{name}` | {sum(c)} | " + " | ".join(str(v) for v in c) + f" | {f[0]} |")
    return "\n".join(rows)


def latency(m: dict) -> str:
    rows = ["| file | bytes | median ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
    for k in ("fp32", "int8", "int8_cpu"):
        lat = m[k]["latency"]
        rows.append(f"| {k} | {m[k]['size_bytes']:,} | {lat['median_ms']:.3f} | {lat['p99_ms']:.3f} |")
    return "\n".join(rows)


def float_nodes(quant: dict, form: str) -> str:
    nodes = quant.get("forms", {}).get(form, {}).get("chosen", {}).get("excluded_nodes") or []
    return ", ".join(f"`{n}`" for n in nodes) or "none"
