"""The tables ``edge bench`` prints: the models alone, each scenario's throughput and latency, what
users feel (capture to screen, frames dropped as stale) and CPU per frame by stage."""

from __future__ import annotations

from typing import Any

from edge.runtime.cpu import STAGES


def print_table(r: dict[str, Any]) -> None:
    print(f"\nsource: {r['source']}")
    print(
        f"\n{'model':22s} {'prec':5s} {'MB':>6s} {'model p50':>10s} {'p99':>8s} "
        f"{'+pre/post p50':>14s} {'p99':>8s} {'paced p50':>10s} {'p99':>8s}"
    )
    for m in r["models"] + ([r["slow_model"]] if "slow_model" in r else []):
        mm, im, pm = m["model_ms"], m["infer_ms"], m.get("model_ms_paced", {})
        print(
            f"{m['name']:22s} {m['precision']:5s} {m['file_mb']:6.2f} {mm['p50']:10.2f} {mm['p99']:8.2f} "
            f"{im['p50']:14.2f} {im['p99']:8.2f} {pm.get('p50', float('nan')):10.2f} "
            f"{pm.get('p99', float('nan')):8.2f}"
        )
    print(
        f"\n{'scenario':18s} {'loop':15s} {'src fps':>8s} {'AI fps':>7s} {'disp fps':>8s} {'skipped':>7s} "
        f"{'e2e p50':>8s} {'e2e p99':>8s} {'ovh p50':>8s} {'disp lat p50':>12s} {'max':>8s}"
    )
    for name, pair in r["scenarios"].items():
        for loop, s in pair.items():
            e, o, d = s["e2e_ms"], s["overhead_ms"], s["display_latency_ms"]
            print(
                f"{name:18s} {loop:15s} {s['source_fps']:8.1f} {s['ai_fps']:7.1f} {s['display_fps']:8.1f} "
                f"{s['skipped']:7d} {e.get('p50', 0):8.2f} {e.get('p99', 0):8.2f} {o.get('p50', 0):8.2f} "
                f"{d.get('p50', 0):12.2f} {d.get('max', 0):8.1f}"
            )
    print_felt(r)
    print("\nchecks:")
    for k, v in r["checks"].items():
        print(f"  {k:40s} {v:.2f}" if isinstance(v, float) else f"  {k:40s} {v}")
    print(f"  {'peak_rss_mb':40s} {r['peak_rss_mb']}")


def print_felt(r: dict[str, Any]) -> None:
    """Capture to screen (ms) and CPU per frame (ms, this process) of every paced scenario."""
    stages = [s for s in STAGES]
    head = " ".join(f"{s[:8]:>8s}" for s in stages)
    print(
        f"\n{'what users feel':18s} {'loop':15s} {'c2s p50':>8s} {'p95':>7s} {'p99':>7s} {'max':>7s} "
        f"{'stale':>5s} | {'CPU ms':>6s} {head}"
    )
    for name, pair in r["scenarios"].items():
        if name.startswith("max"):
            continue  # flat out, frames queue by design: its latency is not what a user sees
        for loop, s in pair.items():
            c, cpu = s.get("result_on_screen_ms", {}), s.get("cpu", {}).get("ms_per_frame", {})
            by = " ".join(f"{cpu.get(st, 0.0):8.2f}" for st in stages)
            kid = s.get("cpu", {}).get("child_processes_ms_per_frame", {}).get("video-encoder")
            by += f"  +encoder {kid:.2f}" if kid else ""
            print(
                f"{name:18s} {loop:15s} {c.get('p50', 0):8.1f} {c.get('p95', 0):7.1f} {c.get('p99', 0):7.1f} "
                f"{c.get('max', 0):7.1f} {s.get('stale_dropped', 0):5d} | {cpu.get('total', 0.0):6.2f} {by}"
            )
    if "load" in r:
        ld = r["load"]
        print(f"  loaded: {ld['hogs']} CPU hogs, {ld['nice']} nice levels below the bench "
              f"({ld['hogs_cpu_s']} CPU s in the loaded runs)")  # fmt: skip
