"""The HTML renderer: any :class:`~cnnbench.report.layout.Document` as one self-contained page, with inline CSS
and every figure embedded as a ``data:`` PNG, so the file can be mailed, attached to a CI run or opened offline, and
needs no JavaScript. :func:`render` draws ``report.html`` (the run report's layout,
:func:`cnnbench.report.run_page.html_document`) and ``cnnbench compare --html`` alike; :func:`render_html` is the
run report's page.

:func:`escape`, :func:`table`, :func:`figure` and :func:`page` are the building blocks the renderer is made of.
"""

from __future__ import annotations

import base64
import html as stdlib_html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cnnbench.report.layout import Block, Document, Figure, Heading, Items, Paragraph, Section, Span, Table
from cnnbench.report.run_page import html_document
from cnnbench.results.records import Report, as_report

CSS = """
:root { color-scheme: light; --ink: #1d2329; --muted: #6b7280; --rule: #d8dde3; --band: #f5f7f9;
        --good: #1e6b34; --good-bg: #e3f4e8; --bad: #a61b1b; --bad-bg: #fde6e6; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: 0.2rem 0 0.4rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 2px solid var(--rule); }
h3 { font-size: 1.08rem; margin: 1.4rem 0 0.4rem; }
p { margin: 0.4rem 0; max-width: 75rem; }
code { font: 0.92em ui-monospace, "DejaVu Sans Mono", monospace; background: var(--band); padding: 0 0.25em;
       border-radius: 3px; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.3rem 1.1rem; list-style: none; padding: 0; margin: 0.6rem 0; }
nav a { color: #1f5fa8; text-decoration: none; }
nav a:hover { text-decoration: underline; }
.scroll { overflow-x: auto; margin: 0.5rem 0 1rem; }
table { border-collapse: collapse; font-size: 0.86rem; font-variant-numeric: tabular-nums; }
th, td { padding: 0.22rem 0.6rem; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top;
         white-space: nowrap; }
td:last-child:not(.num) { white-space: normal; min-width: 12rem; }
th { background: var(--band); font-weight: 600; white-space: nowrap; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num, th.num { text-align: right; }
td.winner { font-weight: 700; }
td.good, span.good { color: var(--good); background: var(--good-bg); }
td.bad, span.bad { color: var(--bad); background: var(--bad-bg); }
td.muted, span.muted, p.muted { color: var(--muted); }
p.good { color: var(--good); }
td.pre { white-space: pre-wrap; font: 0.8rem ui-monospace, "DejaVu Sans Mono", monospace; max-width: 60rem; }
.badge { display: inline-block; padding: 0.05rem 0.55rem; margin-right: 0.3rem; border-radius: 999px;
         background: var(--band); font-weight: 600; }
figure { margin: 0.6rem 0 1.2rem; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 0.2rem; max-width: 75rem; }
details { margin: 0.4rem 0 1rem; }
summary { cursor: pointer; color: #1f5fa8; }
"""

TAGS = {"code": "code", "bold": "b", "italic": "i"}
CLASSES = {"best": "winner", "alert": "bad"}  # a layout class as the stylesheet names it


# ------------------------------------------------------------------------------------------ building blocks


def escape(value: object) -> str:
    """``str(value)`` with ``&``, ``<``, ``>`` and quotes escaped, safe as HTML text and attribute values."""
    return stdlib_html.escape(str(value))


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Iterable[int] = (),
    cell_classes: Sequence[Sequence[str | None]] | None = None,
) -> str:
    """An HTML table of plain-text cells (escaped here) in a horizontally scrolling box; ``right`` are the indexes of
    right-aligned (numeric) columns, ``cell_classes`` (same shape as ``rows``) a class per cell: ``winner`` (bold),
    ``good``, ``bad`` or ``muted``."""
    aligned = set(right)

    def cell(tag: str, text: str, column: int, extra: str | None) -> str:
        classes = " ".join(c for c in ("num" if column in aligned else None, CLASSES.get(extra or "", extra)) if c)
        attribute = f' class="{escape(classes)}"' if classes else ""
        return f"<{tag}{attribute}>{escape(text)}</{tag}>"

    head = "".join(cell("th", text, i, None) for i, text in enumerate(header))
    classes: Sequence[Sequence[str | None]] = cell_classes or [[None] * len(row) for row in rows]
    body = "\n".join(
        "<tr>" + "".join(cell("td", text, i, c) for i, (text, c) in enumerate(zip(row, row_classes, strict=True)))
        + "</tr>"
        for row, row_classes in zip(rows, classes, strict=True)
    )  # fmt: skip
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def figure(png: bytes, alt: str, caption: str = "") -> str:
    """A figure holding ``png`` inline as a ``data:`` URI (nothing to fetch), with alt text and an optional caption."""
    data = base64.b64encode(png).decode("ascii")
    caption_html = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">{caption_html}</figure>'


def page(title: str, sections: Sequence[str]) -> str:
    """The whole HTML5 document around pre-rendered section HTML: inline CSS, no scripts, no external resources."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )


# ------------------------------------------------------------------------------------------------ renderer


def render(document: Document) -> str:
    """``document`` as a page: a header with its title and intro, a navigation list of the anchored sections when
    the document asks for one, then every section."""
    header = [f"<h1>{inline(document.title)}</h1>", *(_block(b) for b in document.intro)]
    parts = ["<header>\n" + "\n".join(header) + "\n</header>"]
    if document.nav:
        links = "".join(f'<li><a href="#{escape(s.anchor)}">{escape(s.title)}</a></li>'
                        for s in document.sections if s.anchor)  # fmt: skip
        parts.append(f"<nav><ul>{links}</ul></nav>")
    parts += [_section(section) for section in document.sections]
    return page(document.plain_title, parts)


def inline(parts: Sequence[Span]) -> str:
    """Inline parts as HTML, their text escaped."""
    out = []
    for part in parts:
        text, style = escape(part.text), part.style or ""
        if style.startswith("badge"):
            out.append(f'<span class="{escape(style)}">{text}</span>')
        elif style in TAGS:
            out.append(f"<{TAGS[style]}>{text}</{TAGS[style]}>")
        else:
            out.append(text)
    return "".join(out)


def _section(section: Section) -> str:
    anchor = f' id="{escape(section.anchor)}"' if section.anchor else ""
    body = [f"<h2>{escape(section.title)}</h2>", *(_block(b) for b in section.blocks)]
    return f"<section{anchor}>\n" + "\n".join(body) + "\n</section>"


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        cls = f' class="{escape(block.cls)}"' if block.cls else ""
        return f"<p{cls}>{inline(block.parts)}</p>"
    if isinstance(block, Items):
        return "<ul>\n" + "\n".join(f"<li>{inline(item.parts)}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, Heading):
        return f"<h3>{inline(block.parts)}</h3>"
    if isinstance(block, Table):
        shown = table(block.header, block.rows, block.right, block.classes)
        if block.folded:
            shown = f"<details><summary>{escape(block.folded)}</summary>{shown}</details>"
        return (f"<h3>{escape(block.title)}</h3>\n" if block.title else "") + shown
    if isinstance(block, Figure):
        return figure(block.make_png(), block.alt, block.caption)
    raise TypeError(f"not a block: {block!r}")


def render_html(report: Report | Mapping[str, Any]) -> str:
    """The run report as one self-contained HTML page (``report.html``)."""
    return render(html_document(as_report(report)))
