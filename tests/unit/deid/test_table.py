from __future__ import annotations

from pathlib import Path

import pytest

from edge.deid.errors import DeidError
from edge.deid.table import ACTIONS, TABLE_PATH, load_table, parse_table


def test_bundled_table_has_every_row_and_its_attribution() -> None:
    table = load_table()
    assert len(table) == 621
    assert table.private is not None and table.private.action == "X"
    assert (TABLE_PATH.parent / "SOURCE.md").read_text().count("innolitics") >= 1
    assert {r.action for r in table.exact.values()} <= ACTIONS


@pytest.mark.parametrize(
    ("tag", "name", "action"),
    [
        (0x00100010, "Patient's Name", "Z"),
        (0x00100020, "Patient ID", "Z/D"),
        (0x0020000D, "Study Instance UID", "U"),
        (0x00081140, "Referenced Image Sequence", "X/Z/U*"),
        (0x60023000, "Overlay Data", "X"),  # (60XX,3000) pattern
        (0x501E1234, "Curve Data", "X"),  # (50XX,XXXX) pattern
    ],
)
def test_tags_and_patterns_resolve(tag: int, name: str, action: str) -> None:
    rule = load_table().rule_for(tag)
    assert rule is not None and (rule.name, rule.action) == (name, action)


def test_unlisted_tag_has_no_rule() -> None:
    assert load_table().rule_for(0x00280010) is None  # Rows
    assert load_table().rule_for(0x60020010) is None  # Overlay Rows: only 3000 and 4000 are listed


def test_modified_dates_option_is_read() -> None:
    table = load_table()
    assert table.exact[0x00080020].modified_dates_option  # Study Date
    assert not table.exact[0x00100030].modified_dates_option  # Patient's Birth Date: always Z


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "non-empty"),
        ([{"name": "x", "tag": "(0010,0010)"}], "row 0: missing field 'basicProfile'"),
        ([{"name": "x", "tag": "(0010,0010)", "basicProfile": "Q"}], "unknown basicProfile action 'Q'"),
        ([{"name": "x", "tag": "0010,0010", "basicProfile": "X"}], "not of the form"),
        (
            [{"name": "a", "tag": "(0010,0010)", "basicProfile": "X"}] * 2,
            "row 1: tag (0010,0010) listed twice",
        ),
    ],
)
def test_bad_tables_are_named(rows: object, message: str) -> None:
    with pytest.raises(DeidError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_table(rows, "t.json")


def test_unreadable_table_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text("[{")
    with pytest.raises(DeidError, match=r"t\.json: not valid JSON: line 1"):
        load_table(bad)
