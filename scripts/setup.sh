#!/usr/bin/env bash
# Set up a virtual environment in .venv with the runtime (and, with --test, the test tools).
# Safe to run again: it only installs what is missing. Needs Python 3.10-3.12; installs the
# few Debian/Ubuntu packages OpenCV and venv need when they are absent (root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
case "${1:-}" in
  --test) extras="[test]" ;;
  --tools) extras="[test,tools]" ;;
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
if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi
# The sync integration tests start their own mosquitto (own config, free port; never the
# system service the package also installs). Debian puts it in /usr/sbin.
if [ -n "$extras" ] && ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  apt_install mosquitto
fi

if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing into .venv (log: .venv/pip.log)"
  if ! { .venv/bin/python -m pip install --upgrade pip \
         && .venv/bin/python -m pip install -e ".${extras}"; } > .venv/pip.log 2>&1; then
    tail -n 40 .venv/pip.log >&2
    echo "setup: pip failed; the whole log is in .venv/pip.log" >&2
    exit 1
  fi
  touch "$stamp"
fi
echo "setup: ready (.venv, $(.venv/bin/python --version))"
