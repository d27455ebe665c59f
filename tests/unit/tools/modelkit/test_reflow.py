"""Card paragraphs re-wrapped; tables, lists and headings kept."""

from __future__ import annotations

from tools.modelkit.reflow import reflow


def test_paragraphs_are_rewrapped_and_tables_kept() -> None:
    text = "# Title\n\nshort line\nthen a much longer line " + "word " * 30 + "\n\n| a | b |\n| --- | --- |\n"
    out = reflow(text, width=40)
    lines = out.splitlines()
    assert lines[0] == "# Title" and lines[2].startswith("short line then a much")
    assert all(len(x) <= 40 for x in lines if not x.startswith("|"))
    assert "| a | b |" in lines and out.endswith("| --- | --- |\n")


def test_list_items_wrap_with_an_indent() -> None:
    out = reflow("- " + "item " * 20 + "\n  continued\n- second\n", width=30)
    lines = out.splitlines()
    assert lines[0].startswith("- item") and lines[1].startswith("  item")
    assert "continued" in out and lines[-1] == "- second"
