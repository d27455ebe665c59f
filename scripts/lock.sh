#!/usr/bin/env bash
# Refresh the hashed lock files in requirements/ from pyproject.toml with uv (`pip install uv`).
# Pins that still fit are kept; `scripts/lock.sh --upgrade` moves every package to its newest fitting
# release, `--upgrade-package NAME` one package. One universal lock per set, for Python 3.10 to 3.12
# (markers pick per version where a package dropped 3.10). Commit the locks with the change to
# pyproject.toml; scripts/setup.sh reinstalls when they change.
set -euo pipefail
cd "$(dirname "$0")/.."

uv="${UV:-uv}"
command -v "$uv" >/dev/null 2>&1 || { echo "lock: needs uv (pip install uv) or UV=/path/to/uv" >&2; exit 1; }

common=(--universal --python-version 3.10 --generate-hashes --no-python-downloads --quiet
        --custom-compile-command "scripts/lock.sh" "$@")
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

# The test set first: it is what CI runs. Runtime and tools are constrained to its pins, so a package
# has the same version in all three locks.
"$uv" pip compile pyproject.toml requirements/pip.in --extra test "${common[@]}" -o requirements/test.txt
"$uv" pip compile pyproject.toml requirements/pip.in -c requirements/test.txt "${common[@]}" \
  -o requirements/runtime.txt

# Tools: resolved against PyPI's metadata for the torch version in torch.txt, without the CUDA
# packages (see cuda-excludes.txt); torch itself is installed from torch.txt, so it is not emitted.
sed -n 's/^\(torch==[^+; ]*\).*/\1/p' requirements/torch.txt > "$tmp/torch-version.txt"
[ -s "$tmp/torch-version.txt" ] || { echo "lock: no torch==VERSION line in requirements/torch.txt" >&2; exit 1; }
"$uv" pip compile pyproject.toml requirements/pip.in --extra test --extra tools \
  -c requirements/test.txt -c "$tmp/torch-version.txt" --excludes requirements/cuda-excludes.txt \
  --no-emit-package torch "${common[@]}" -o requirements/tools.txt
if grep -nE '^(nvidia-|cuda-|triton)' requirements/tools.txt >&2; then
  echo "lock: CUDA packages above came in with torch; add them to requirements/cuda-excludes.txt" >&2
  exit 1
fi
echo "lock: requirements/{runtime,test,tools}.txt updated"
