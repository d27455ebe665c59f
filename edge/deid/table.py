"""PS3.15 Table E.1-1 (Basic Application Level Confidentiality Profile), loaded from the bundled JSON.

Each row names a tag (or a repeating-group pattern such as ``(60XX,3000)``, where each X matches any
hex digit) and the Basic Profile's action code; the option columns say what an option changes (we use
``rtnLongModifDatesOpt``: dates shifted instead of removed). Private attributes are one special row.
Attribution of the table: ``edge/assets/deid/SOURCE.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from edge.deid.errors import DeidError

TABLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "deid" / "ps3.15-table-e1-1.json"

# Action codes of the Basic Profile, single and combined (PS3.15 E.1.1 Table E.1-1 legend).
ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
_TAG = re.compile(r"^\(([0-9A-FX]{4}),([0-9A-FX]{4})\)$")
_PRIVATE_ROW = "(GGGG,EEEE) WHERE GGGG IS ODD"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: what to do with one attribute."""

    name: str
    tag: str  # as printed in the standard, e.g. "(0010,0010)" or "(60XX,3000)"
    action: str  # Basic Profile action code
    options: dict[str, str] = field(default_factory=dict)  # option column -> action under that option

    @property
    def modified_dates_option(self) -> bool:
        """Under "Retain Longitudinal Temporal Information with Modified Dates" this is cleaned (shifted)."""
        return self.options.get("rtnLongModifDatesOpt") == "C"


@dataclass(frozen=True, slots=True)
class _Pattern:
    mask: int
    value: int
    rule: Rule


@dataclass(frozen=True)
class ProfileTable:
    """Lookup of a tag (as an int, group << 16 | element) to its rule."""

    exact: dict[int, Rule]
    patterns: tuple[_Pattern, ...]
    private: Rule | None

    def rule_for(self, tag: int) -> Rule | None:
        """The rule for a standard (even-group) tag, or None when the table does not list it."""
        rule = self.exact.get(tag)
        if rule is not None:
            return rule
        for p in self.patterns:
            if tag & p.mask == p.value:
                return p.rule
        return None

    def __len__(self) -> int:
        return len(self.exact) + len(self.patterns) + (self.private is not None)


def _parse_tag(text: str, where: str) -> tuple[int, int]:
    """(mask, value) of a tag written "(GGGG,EEEE)" with X as a wildcard nibble."""
    m = _TAG.match(text.strip().upper())
    if m is None:
        raise DeidError(f"{where}: tag {text!r} is not of the form (GGGG,EEEE)")
    digits = m.group(1) + m.group(2)
    mask = value = 0
    for ch in digits:
        mask <<= 4
        value <<= 4
        if ch != "X":
            mask |= 0xF
            value |= int(ch, 16)
    return mask, value


def parse_table(rows: object, origin: str) -> ProfileTable:
    """Validate the table's rows and index them; every problem names the row and field."""
    if not isinstance(rows, list) or not rows:
        raise DeidError(f"{origin}: expected a non-empty JSON list of rows")
    exact: dict[int, Rule] = {}
    patterns: list[_Pattern] = []
    private: Rule | None = None
    for i, row in enumerate(rows):
        where = f"{origin}: row {i}"
        if not isinstance(row, dict):
            raise DeidError(f"{where}: not an object")
        try:
            name, tag, action = str(row["name"]), str(row["tag"]), str(row["basicProfile"])
        except KeyError as exc:
            raise DeidError(f"{where}: missing field {exc.args[0]!r}") from None
        if action not in ACTIONS:
            raise DeidError(f"{where} ({tag} {name}): unknown basicProfile action {action!r}")
        options = {k: str(v) for k, v in row.items() if k.endswith("Opt")}
        rule = Rule(name=name, tag=tag, action=action, options=options)
        if tag.strip().upper() == _PRIVATE_ROW:
            private = rule
            continue
        mask, value = _parse_tag(tag, where)
        if mask == 0xFFFFFFFF:
            if value in exact:
                raise DeidError(f"{where}: tag {tag} listed twice")
            exact[value] = rule
        else:
            patterns.append(_Pattern(mask, value, rule))
    return ProfileTable(exact=exact, patterns=tuple(patterns), private=private)


@lru_cache(maxsize=4)
def load_table(path: Path = TABLE_PATH) -> ProfileTable:
    """The table from ``path`` (default: the bundled copy), parsed once."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeidError(f"{path}: cannot read the profile table: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DeidError(f"{path}: not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    return parse_table(rows, str(path))
