"""Check that this environment holds exactly the locked distributions, and (--prune) remove the others.

    python scripts/check_lock.py [--prune] LOCK [LOCK ...]

Compares `pip list --format=freeze` (editable installs left out: the project itself comes from the
tree) with the union of the given lock files, each requirement's marker evaluated for this Python.
Exit status 1 when a locked distribution is missing, at another version, or when one is installed
that no lock names. --prune first uninstalls the unlocked ones (what setup.sh does after installing,
so a package dropped from a lock, or the setuptools a venv seeds, does not linger).

Runs with only the standard library and pip (pip's vendored `packaging` where `packaging` itself is
not installed), so it works in the runtime set too.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

try:
    from packaging import markers, utils, version
except ImportError:  # the runtime set without packaging: pip always carries its own copy
    from pip._vendor.packaging import markers, utils, version  # type: ignore[no-redef]

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?\s*$")


def locked(paths: list[Path]) -> dict[str, str]:
    """{canonical name: version} of the pins in `paths` whose markers hold here."""
    pins: dict[str, str] = {}
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.strip()
            # Comments, hash continuation lines and options (--index-url ...) name no distribution.
            if not text or text.startswith(("#", "-")):
                continue
            match = _PIN.match(text)
            if match is None:
                raise SystemExit(f"check_lock: {path}:{number}: not a NAME==VERSION pin: {text}")
            name, pin, marker = match.groups()
            if marker and not markers.Marker(marker).evaluate():
                continue
            key = utils.canonicalize_name(name)
            if key in pins and version.Version(pins[key]) != version.Version(pin):
                raise SystemExit(f"check_lock: {name} pinned at {pins[key]} and {pin}")
            pins[key] = pin
    return pins


def installed() -> dict[str, tuple[str, str]]:
    """{canonical name: (name, version)} as `pip list` reports them, editable installs left out."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
        check=True, capture_output=True, text=True,
    ).stdout
    found: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        name, _, have = line.partition("==")
        found[utils.canonicalize_name(name)] = (name, have)
    return found


def differences(pins: dict[str, str], have: dict[str, tuple[str, str]]) -> list[str]:
    problems = []
    for key, pin in sorted(pins.items()):
        if key not in have:
            problems.append(f"missing   {key}=={pin}")
        elif version.Version(have[key][1]) != version.Version(pin):
            problems.append(f"version   {key}: installed {have[key][1]}, locked {pin}")
    problems += [f"unlocked  {have[key][0]}=={have[key][1]}" for key in sorted(set(have) - set(pins))]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+", type=Path)
    parser.add_argument("--prune", action="store_true", help="uninstall distributions no lock names")
    args = parser.parse_args(argv)

    pins = locked(args.locks)
    have = installed()
    extra = sorted(have[key][0] for key in set(have) - set(pins))
    if args.prune and extra:
        print("check_lock: removing unlocked " + " ".join(extra))
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", *extra], check=True)
        have = installed()

    problems = differences(pins, have)
    names = " + ".join(str(p) for p in args.locks)
    if problems:
        print(f"check_lock: this environment differs from {names}:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print(f"check_lock: {len(pins)} distributions installed, exactly as {names} pins them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
