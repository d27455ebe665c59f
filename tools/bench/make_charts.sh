#!/usr/bin/env bash
# The performance charts of docs/performance.md, on a quiet machine (nothing else running):
# edge bench (every scenario, 5 flat-out rounds, the loaded one with 2 CPU hogs it starts and
# stops itself) writes runs/bench.json and docs/perf-latency.png, docs/perf-cpu.png.
#   tools/bench/make_charts.sh [extra edge bench arguments]
# Re-chart a bench JSON without running anything:
#   .venv/bin/edge bench --from-json runs/bench.json --plot docs
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -c "import matplotlib" 2>/dev/null || {
  echo "matplotlib is missing: ./scripts/setup.sh --tools" >&2
  exit 1
}
.venv/bin/edge bench --out runs/bench.json --plot docs "$@"
