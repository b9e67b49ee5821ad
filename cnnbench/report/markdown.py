"""The markdown renderer of a :class:`~cnnbench.report.layout.Document`: ``report.md`` and ``cnnbench compare``'s
output, GitHub markdown whose tables are padded so that it also reads as plain text in a terminal or CI log."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from cnnbench.report import fmt
from cnnbench.report.layout import Block, Cell, Document, Figure, Heading, Items, Paragraph, Span, Table

BOLD = ("best", "alert")  # the cell classes markdown shows in bold
MARKS = {"code": "`{}`", "bold": "**{}**", "italic": "*{}*"}


def render(document: Document) -> str:
    """``document`` as markdown: ``#`` title, the intro, then each section under ``##``; blocks are separated by a
    blank line and, when the document has a ``width``, paragraphs and items are wrapped to it."""
    parts = ["# " + inline(document.title)]
    parts += [text for block in document.intro if (text := _block(block, document.width))]
    for section in document.sections:
        parts.append("## " + section.title)
        parts += [text for block in section.blocks if (text := _block(block, document.width))]
    return "\n\n".join(parts).rstrip() + "\n"


def inline(parts: Sequence[Span]) -> str:
    return "".join(MARKS.get(p.style or "", "{}").format(p.text) for p in parts)


def _block(block: Block, width: int | None) -> str:
    if isinstance(block, Paragraph):
        text = inline(block.parts)
        return textwrap.fill(text, width) if width else text
    if isinstance(block, Items):
        lines = []
        for item in block.items:
            text, nest = inline(item.parts), "  " * (block.indent + item.indent)
            lines += (textwrap.wrap(text, width, initial_indent=f"{nest}- ", subsequent_indent=f"{nest}  ",
                                    break_on_hyphens=False) if width else [f"{nest}- {text}"])  # fmt: skip
        return "\n".join(lines)
    if isinstance(block, Heading):
        return "### " + inline(block.parts)
    if isinstance(block, Table):
        return table(block)
    if isinstance(block, Figure):
        return f"![{block.alt}]({block.link})" if block.link else ""
    raise TypeError(f"not a block: {block!r}")


def cell(c: Cell) -> str:
    return f"**{c.text}**" if c.cls in BOLD else c.text


def table(block: Table) -> str:
    """A table (under its title), padded to aligned columns unless it is ``compact``."""
    rows = [[cell(c) for c in row] for row in block.cells]
    if block.compact:
        rule = "|" + "|".join("---:" if i in block.right else "---" for i in range(len(block.header))) + "|"
        grid = [block.header, *rows]
        lines = [f"| {' | '.join(fmt.one_line(c).replace('|', chr(92) + '|') for c in row)} |" for row in grid]
        lines.insert(1, rule)
    else:
        lines = fmt.md_table(block.header, rows, block.right)
    return "\n".join(([f"### {block.title}", ""] if block.title else []) + lines)
