#!/usr/bin/env bash
# Set up a virtual environment in .venv with the runtime (with --test, also the test tools; with
# --tools, also the training tools), exactly as the hashed lock files in requirements/ pin them.
# Safe to run again: it installs only when pyproject.toml or a lock changed since the last install.
# Needs Python 3.10-3.12; installs the few Debian/Ubuntu packages OpenCV and venv need when they
# are absent (root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

set_name="runtime"
case "${1:-}" in
  --test) set_name="test" ;;
  --tools) set_name="tools" ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--test|--tools]" >&2; exit 2 ;;
esac

py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.12 python3.11 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(not ((3,10) <= sys.version_info[:2] <= (3,12)))' 2>/dev/null; then
      py="$cand"; break
    fi
  done
fi
if [ -z "$py" ]; then
  echo "setup: need Python 3.10, 3.11 or 3.12 (set PYTHON=/path/to/python)" >&2; exit 1
fi

apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "setup: please install: $*" >&2; return 1; }
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing system packages: $*"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

need=()
"$py" -c 'import ensurepip, venv' 2>/dev/null || need+=("python3-venv")
# opencv-python links against libGL and glib; minimal images lack them.
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || need+=("libgl1")
ldconfig -p 2>/dev/null | grep -q 'libglib-2.0.so.0' || need+=("libglib2.0-0")
# cobs (the probe link's COBS in C) ships only a source archive for Linux: it builds with a C
# compiler and the Python headers.
command -v cc >/dev/null 2>&1 || need+=("gcc")
inc="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
[ -f "$inc/Python.h" ] || need+=("$(basename "$py")-dev")
if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi
# The sync integration tests start their own mosquitto (own config, free port; never the
# system service the package also installs). Debian puts it in /usr/sbin.
if [ "$set_name" != runtime ] && ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  apt_install mosquitto
fi
# The DICOM network tests send with dcmtk's storescu / echoscu, a client this project did not write.
if [ "$set_name" != runtime ] && ! command -v storescu >/dev/null 2>&1; then
  apt_install dcmtk
fi

if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
# Each set's lock files. torch (tools) is pinned by version in its own file: requirements/torch.txt.
locks_of() {
  case "$1" in
    runtime) echo requirements/runtime.txt ;;
    test) echo requirements/test.txt ;;
    tools) echo requirements/torch.txt requirements/tools.txt ;;
  esac
}
# A set is current when its stamp is newer than pyproject.toml and every file in requirements/.
# The sets nest (runtime < test < tools, same pins), so a current larger set serves a smaller one.
current() {
  local stamp=".venv/.installed-$1" f
  [ -f "$stamp" ] || return 1
  for f in pyproject.toml requirements/*; do
    if [ "$f" -nt "$stamp" ]; then return 1; fi
  done
}
case "$set_name" in
  runtime) serving="runtime test tools" ;;
  test) serving="test tools" ;;
  tools) serving="tools" ;;
esac
for s in $serving; do
  if current "$s"; then echo "setup: ready (.venv, $(.venv/bin/python --version), $s set)"; exit 0; fi
done

# (Called as a condition, where set -e does not apply: each step returns on failure itself.)
install() {
  local pip=(.venv/bin/python -m pip install --disable-pip-version-check) lock
  for lock in $(locks_of "$set_name"); do
    if [ "$lock" = requirements/torch.txt ]; then
      # Alone and without dependencies, so the hashed tools lock finds it installed and brings
      # everything it needs.
      "${pip[@]}" --no-deps -r "$lock" || return
    else
      "${pip[@]}" --require-hashes -r "$lock" || return
    fi
  done
  "${pip[@]}" --no-deps -e . || return
  # Remove what no lock names (a package dropped from a lock, the setuptools a venv seeds).
  .venv/bin/python scripts/check_lock.py --prune $(locks_of "$set_name") || return
  # Every requirement met, the project's own included: a dependency added to pyproject.toml
  # without scripts/lock.sh shows up here, not in the tests.
  .venv/bin/python -m pip check \
    || { echo "setup: the locks miss a requirement: run scripts/lock.sh after changing pyproject.toml"; return 1; }
}
echo "setup: installing the $set_name set into .venv (log: .venv/pip.log)"
rm -f .venv/.installed*  # also the stamps of older setup.sh versions
if ! install > .venv/pip.log 2>&1; then
  tail -n 40 .venv/pip.log >&2
  echo "setup: install failed; the whole log is in .venv/pip.log" >&2
  exit 1
fi
touch ".venv/.installed-$set_name"
echo "setup: ready (.venv, $(.venv/bin/python --version), $set_name set)"
