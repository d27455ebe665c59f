"""Markdown paragraphs of a generated card re-wrapped to one width (figures substituted into a
template leave lines of uneven length); tables, lists, headings, quotes and code stay as they are."""

from __future__ import annotations

import textwrap

WIDTH = 100
_KEEP = ("|", "#", ">", "```", "    ")


def reflow(text: str, width: int = WIDTH) -> str:
    out: list[str] = []
    para: list[str] = []
    item: list[str] = []  # a list item and its indented continuation lines

    def flush() -> None:
        if para:
            out.extend(textwrap.wrap(" ".join(para), width, break_on_hyphens=False, break_long_words=False))
            para.clear()
        if item:
            out.extend(
                textwrap.wrap(
                    " ".join(item),
                    width,
                    subsequent_indent="  ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
            item.clear()

    for line in text.splitlines():
        s = line.strip()
        if not s:
            flush()
            out.append("")
        elif line.startswith(_KEEP):
            flush()
            out.append(line)
        elif line.startswith("- "):
            flush()
            item.append(s)
        elif item and line.startswith("  "):
            item.append(s)
        else:
            if item:
                flush()
            para.append(s)
    flush()
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
