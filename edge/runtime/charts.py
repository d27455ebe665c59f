"""``edge bench --plot DIR``: the bench's figures as PNG charts (matplotlib, the tools extra).

matplotlib is imported here, when a chart is asked for, and nowhere else: the runtime never needs
it. Two charts, each the pipelined runtime beside the naive loop:

- ``perf-latency.png``: capture-to-screen latency (capture to the first frame on screen showing
  that frame's result) per scenario, as the share of frames at or under each latency (ECDF), with
  p50 / p99 in the legend;
- ``perf-cpu.png``: CPU milliseconds per frame of the bench process by stage, stacked, per
  scenario and loop (docs/performance.md says how each stage is measured); the slow-model
  scenario is left out (its 80 ms model would flatten the rest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.errors import EdgeError

LATENCY_PNG = "perf-latency.png"
CPU_PNG = "perf-cpu.png"
STAGE_COLORS = {
    "acquisition": "#4c72b0",
    "pre_post": "#55a868",
    "model": "#c44e52",
    "overlay": "#8172b2",
    "recording": "#ccb974",
    "display": "#64b5cd",
    "results": "#8c8c8c",
    "other": "#d9d9d9",
}
LOOP_STYLE = {"pipelined": "-", "naive": "--"}


def check_matplotlib() -> None:
    """Raise the EdgeError that says how to install matplotlib, if it is missing."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed, none opened
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise EdgeError(
            "edge bench --plot needs matplotlib, which is in the tools extra "
            f"(./scripts/setup.sh --tools, or pip install matplotlib): {exc}"
        ) from exc
    return plt


def _scenarios(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Scenarios that have capture-to-screen values, in the bench's order."""
    return [
        (name, pair)
        for name, pair in result.get("scenarios", {}).items()
        if not name.startswith("max")  # flat out, frames queue by design: not what a user sees
        and any(run.get("capture_to_screen_values") for run in pair.values())
    ]


def plot_latency(result: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    import numpy as np

    scenarios = _scenarios(result)
    if not scenarios:
        raise EdgeError("the bench result holds no capture-to-screen figures to plot")
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.6), squeeze=False)
    for ax, (name, pair) in zip(axes[0], scenarios):
        for loop, run in pair.items():
            values = np.sort(np.asarray(run.get("capture_to_screen_values") or [], float))
            if values.size == 0:
                continue
            share = np.arange(1, values.size + 1) / values.size
            p50, p99 = np.percentile(values, [50, 99])
            ax.step(values, share, where="post", linestyle=LOOP_STYLE.get(loop, ":"),
                    label=f"{loop}: p50 {p50:.0f}, p99 {p99:.0f} ms")  # fmt: skip
        ax.set_xscale("log")
        ticker = plt.matplotlib.ticker
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))  # 1, 2, 5, 10, 20 ...
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # not "4x10^0" at every minor tick
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_xlabel("capture to screen (ms, log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("share of frames at or under")
    fig.suptitle("capture-to-screen latency: pipelined runtime vs naive loop", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_cpu(result: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    rows = [
        (
            f"{name.replace('_', ' ')} / {loop}",
            run["cpu"]["ms_per_frame"] | run["cpu"].get("child_processes_ms_per_frame", {}),
        )
        for name, pair in result.get("scenarios", {}).items()
        for loop, run in pair.items()
        if run.get("cpu") and "slow" not in name  # the slow model's 80 ms would flatten the rest
    ]
    if not rows:
        raise EdgeError("the bench result holds no CPU figures to plot")
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(rows) + 2.2))
    labels = [r[0] for r in rows][::-1]
    per = [r[1] for r in rows][::-1]
    left = [0.0] * len(rows)
    for stage, color in STAGE_COLORS.items():
        widths = [max(0.0, float(p.get(stage, 0.0))) for p in per]
        ax.barh(labels, widths, left=left, color=color, label=stage)
        left = [a + b for a, b in zip(left, widths)]
    # The recording's encoder process: the same work on another core, drawn after the process total.
    kids = [max(0.0, float(p.get("video-encoder", 0.0))) for p in per]
    if any(kids):
        ax.barh(labels, kids, left=left, color="#ccb974", hatch="//", edgecolor="#7a6f3a",
                label="recording (encoder process)")  # fmt: skip
    for y, (total, kid) in enumerate(zip((p.get("total", 0.0) for p in per), kids)):
        text = f"{total:.1f}" + (f" + {kid:.1f}" if kid else "")
        ax.text(left[y] + kid + 0.1, y, text, va="center", fontsize=7)
    ax.set_xlim(0, max(a + b for a, b in zip(left, kids)) * 1.2)  # room for the figures
    ax.set_xlabel("CPU ms per frame: the runtime's process (+ its encoder process; the probe's excluded)")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("CPU per frame by stage", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_bench(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the bench's charts into ``out_dir`` (made if missing); returns their paths."""
    check_matplotlib()  # a missing matplotlib is said before anything is made
    out_dir.mkdir(parents=True, exist_ok=True)
    return [plot_latency(result, out_dir / LATENCY_PNG), plot_cpu(result, out_dir / CPU_PNG)]
