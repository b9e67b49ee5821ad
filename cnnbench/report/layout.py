"""The one layout every report output is built as: a :class:`Document` of titled :class:`Section` s, each an ordered
list of blocks (:class:`Paragraph`, :class:`Items`, :class:`Heading`, :class:`Table`, :class:`Figure`). The run report
(:mod:`cnnbench.report.run_text`, :mod:`cnnbench.report.run_page`) and ``cnnbench compare``
(:mod:`cnnbench.report.compare`) build documents;
:mod:`cnnbench.report.markdown`, :mod:`cnnbench.report.html` and :mod:`cnnbench.report.terminal` each render any
document, and only they know their format.

Text is plain: inline styles are :class:`Span` s (code, bold, italic, a badge), never markup in a string, so every
renderer escapes what it must. A figure is made on demand (``make_png``), so the markdown and the terminal, which
do not draw it, never import matplotlib.

Cell classes: ``best`` (the best of its column: bold in markdown and HTML, ``*`` in the terminal), ``winner`` (bold
in HTML only), ``good``, ``bad``, ``muted`` (coloured in HTML) and ``pre`` (preformatted in HTML).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A piece of inline text and its style: None (plain), ``code``, ``bold``, ``italic`` or ``badge <class>``."""

    text: str
    style: str | None = None


Inline = str | Span


def code(text: object) -> Span:
    return Span(str(text), "code")


def bold(text: object) -> Span:
    return Span(str(text), "bold")


def italic(text: object) -> Span:
    return Span(str(text), "italic")


def badge(text: object, cls: str) -> Span:
    return Span(str(text), f"badge {cls}")


def spans(parts: Sequence[Inline]) -> tuple[Span, ...]:
    return tuple(p if isinstance(p, Span) else Span(p) for p in parts)


def plain(parts: Sequence[Span]) -> str:
    """The text of ``parts`` without styles."""
    return "".join(p.text for p in parts)


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of inline parts; ``cls`` colours it in HTML (``muted``, ``good``); ``indent`` is its nesting in
    the terminal (two spaces a level; markdown and HTML ignore it)."""

    parts: tuple[Span, ...]
    cls: str | None = None
    indent: int = 0

    @property
    def text(self) -> str:
        return plain(self.parts)


def para(*parts: Inline, cls: str | None = None, indent: int = 0) -> Paragraph:
    return Paragraph(spans(parts), cls, indent)


@dataclass(frozen=True)
class Items:
    """A bullet list; ``indent`` as a paragraph's."""

    items: tuple[Paragraph, ...]
    indent: int = 0


def items(texts: Sequence[Inline | Sequence[Inline]], indent: int = 0) -> Items:
    return Items(tuple(para(t) if isinstance(t, (str, Span)) else para(*t) for t in texts), indent)


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section (markdown ``###``, HTML ``<h3>``)."""

    parts: tuple[Span, ...]


def heading(*parts: Inline) -> Heading:
    return Heading(spans(parts))


@dataclass(frozen=True)
class Cell:
    """A table cell: plain text and its class (see the module's docstring)."""

    text: str
    cls: str | None = None


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells. ``right``: the indexes of right-aligned (numeric) columns; ``title``: a heading
    above it; ``folded``: HTML shows it folded under this summary; ``compact``: markdown leaves its columns
    unpadded."""

    header: list[str]
    cells: list[list[Cell]]
    right: Collection[int] = ()
    title: str = ""
    folded: str = ""
    compact: bool = False

    @property
    def rows(self) -> list[list[str]]:
        return [[cell.text for cell in row] for row in self.cells]

    @property
    def classes(self) -> list[list[str | None]]:
        return [[cell.cls for cell in row] for row in self.cells]


def table(
    header: list[str],
    rows: Sequence[Sequence[str]],
    right: Collection[int] = (),
    classes: Sequence[Sequence[str | None]] | None = None,
    **options: str | bool,
) -> Table:
    """A :class:`Table` from rows of text and, optionally, a class per cell (same shape)."""
    shape = classes if classes is not None else [[None] * len(row) for row in rows]
    cells = [[Cell(t, c) for t, c in zip(row, cls, strict=True)] for row, cls in zip(rows, shape, strict=True)]
    return Table(header, cells, right, **options)  # type: ignore[arg-type]  # title/folded: str, compact: bool


@dataclass(frozen=True)
class Figure:
    """A figure drawn on demand as PNG bytes. ``link``: the file the markdown shows it from (``![alt](link)``),
    written beside it; None: only the HTML page, which embeds it, shows it."""

    make_png: Callable[[], bytes]
    alt: str
    caption: str = ""
    link: str | None = None


Block = Paragraph | Items | Heading | Table | Figure


@dataclass(frozen=True)
class Section:
    """A titled part of a document; ``anchor`` names it for the HTML page's navigation (empty: not listed)."""

    title: str
    blocks: list[Block]
    anchor: str = ""


@dataclass(frozen=True)
class Document:
    """A whole output: its title (the page's ``<h1>``, markdown's ``#``), the blocks under the title, and sections.
    ``nav``: the HTML page lists the anchored sections at the top; ``width``: markdown wraps paragraphs and items to
    this many columns (None: one line each)."""

    title: tuple[Span, ...]
    intro: list[Block]
    sections: list[Section]
    nav: bool = False
    width: int | None = None
    page_title: str = ""

    @property
    def plain_title(self) -> str:
        return self.page_title or plain(self.title)
