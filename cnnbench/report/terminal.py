"""The terminal renderer of a :class:`~cnnbench.report.layout.Document`: plain lines for the end of a pytest run,
none longer than the width (but for a word too long to fit, such as a path, which stays whole). Tables are
compact (two spaces between columns, ``±`` without spaces, the best cell marked ``*``) and cut to the width; prose
is wrapped, a wrapped line indented two spaces more than its first; figures are left out."""

from __future__ import annotations

import textwrap

from cnnbench.report import fmt
from cnnbench.report.layout import Block, Cell, Document, Figure, Heading, Items, Paragraph, Table, plain


def render(document: Document, width: int = 100) -> list[str]:
    """``document`` as lines: its title, the intro, then each section's title (when it has one) and blocks."""
    lines = [fmt.fit(plain(document.title), width)]
    for block in document.intro:
        lines += _block(block, width)
    for section in document.sections:
        lines += [fmt.fit(section.title, width)] if section.title else []
        for block in section.blocks:
            lines += _block(block, width)
    return lines


def _block(block: Block, width: int) -> list[str]:
    if isinstance(block, Paragraph):
        return wrap(block.text, width, block.indent)
    if isinstance(block, Items):
        return [line for item in block.items for line in wrap(item.text, width, block.indent + item.indent)]
    if isinstance(block, Heading):
        return [fmt.fit(plain(block.parts), width)]
    if isinstance(block, Table):
        return table(block, width)
    if isinstance(block, Figure):
        return []
    raise TypeError(f"not a block: {block!r}")


def wrap(text: str, width: int, indent: int = 0) -> list[str]:
    """``text`` wrapped to ``width``, indented two spaces per ``indent`` level and two more after its first line;
    words are never broken, so a long path stays whole."""
    first = "  " * indent
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=first + "  ", break_long_words=False,
                         break_on_hyphens=False)  # fmt: skip


def cell(c: Cell) -> str:
    text = c.text.replace(" ± ", "±")
    return f"{text}*" if c.cls == "best" else text


def table(block: Table, width: int) -> list[str]:
    """The table indented two spaces, its columns two spaces apart, each line cut to ``width``."""
    grid = [block.header, *([cell(c) for c in row] for row in block.cells)]
    widths = [max(len(row[i]) for row in grid) for i in range(len(block.header))]
    return [fmt.fit("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), width)
            for row in grid]  # fmt: skip
