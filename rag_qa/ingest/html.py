"""Visible text of an HTML page: no scripts, styles or markup; blocks become paragraphs, a table
reads as every table does in rag-qa (`tables`), the title is kept once.

Parsing uses selectolax's Lexbor backend: a maintained, fast HTML5 parser that builds the same
tree a browser does (implicit closes, a missing `</head>` or `</body>`, misnested tags), and it
handles a 20 MB page in well under a second. A hand-written tag counter cannot get those rules
right, and lxml's libxml2 parser follows HTML 4 rather than the HTML5 tree-building algorithm.
"""

from __future__ import annotations

import re

from rag_qa.ingest.tables import grid_lines

HIDDEN = {
    "head", "script", "style", "template", "noscript", "svg", "math", "iframe", "object", "embed",
    "canvas", "select", "datalist", "title",
}  # fmt: skip
BLOCKS = {
    "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6",
    "section", "article", "header", "footer", "nav", "aside", "main",
    "blockquote", "pre", "hr", "figure", "figcaption", "details", "summary", "address", "fieldset",
    "legend", "form", "body", "center",
}  # fmt: skip  (a table is read whole: `_table_lines`)
LINE_BEFORE = {"br"}  # a line break, not a new paragraph
CELLS = {"td", "th"}
MAX_COLSPAN = 100  # the HTML standard caps colspan at 1000; a hostile page should not make a huge row
_WHITESPACE = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-]+)""", re.IGNORECASE)


def declared_charset(data: bytes) -> str | None:
    """The charset a page declares in a <meta> tag within its first few kilobytes, if any."""
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def html_to_text(html: str, with_title: bool = True) -> str:
    """The page's title (unless not `with_title`) and visible body text. Whitespace inside text
    collapses as a browser shows it (except in <pre>); paragraphs are separated by blank lines and
    a table is its header row and a line per row naming each cell by its header (`_table_lines`)."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = " ".join(title_node.text(deep=True).split()) if title_node is not None else ""
    root = tree.body if tree.body is not None else tree.root
    body = _visible_text(root) if root is not None else ""
    return f"{title}\n\n{body}" if title and with_title else body


def _visible_text(root) -> str:  # noqa: ANN001 (selectolax node)
    """Depth-first walk with an explicit stack: deeply nested pages cannot exhaust recursion."""
    parts: list[str] = []
    stack: list[tuple[object, bool, bool]] = [(root, False, False)]  # (node, closing, inside <pre>)
    while stack:
        node, closing, in_pre = stack.pop()
        tag = node.tag  # type: ignore[attr-defined]
        if closing:
            parts.append("\n\n" if tag in BLOCKS else "")
            continue
        if node.is_text_node:  # type: ignore[attr-defined]
            text = node.text_content or ""  # type: ignore[attr-defined]
            parts.append(text if in_pre else _WHITESPACE.sub(" ", text))
            continue
        if node.is_comment_node or tag in HIDDEN:  # type: ignore[attr-defined]
            continue
        if tag == "table":
            parts.append("\n\n" + "\n".join(_table_lines(node)) + "\n\n")
            continue
        if tag in BLOCKS:
            parts.append("\n\n")
        elif tag in LINE_BEFORE:
            parts.append("\n")
        stack.append((node, True, in_pre))
        inside_pre = in_pre or tag == "pre"
        children = list(node.iter(include_text=True))  # type: ignore[attr-defined]
        stack.extend((child, False, inside_pre) for child in reversed(children))
    return "".join(parts)


def _table_lines(table) -> list[str]:  # noqa: ANN001 (selectolax node)
    """A table in the form every table takes (`tables.grid_lines`): its caption, then, when its
    first row is header cells (<th>, or in <thead>), that row naming the columns and a line per
    row naming each cell; else a line per row. A cell spanning columns names each (in the header)
    or sits at its first position; a table nested in a cell is read as that cell's text."""
    caption = next((c for c in table.iter() if c.tag == "caption"), None)
    title = " ".join(_visible_text(caption).split()) if caption is not None else ""
    rows = [row for row in table.css("tr") if _nearest_table(row) == table]
    grid: list[list[str]] = []
    for number, row in enumerate(rows):
        cells: list[str] = []
        for cell in (c for c in row.iter() if c.tag in CELLS):
            text = _visible_text(cell)
            cells += [text] + [text if number == 0 else ""] * (_colspan(cell) - 1)
        grid.append(cells)
    first = rows[0] if rows else None
    header = first is not None and (first.parent.tag == "thead" or all(c.tag == "th" for c in first.iter() if c.tag in CELLS))
    return grid_lines(grid, header=header, title=title)


def _nearest_table(node):  # noqa: ANN001, ANN202
    parent = node.parent
    while parent is not None and parent.tag != "table":
        parent = parent.parent
    return parent


def _colspan(cell) -> int:  # noqa: ANN001
    try:
        return min(max(int(cell.attributes.get("colspan") or 1), 1), MAX_COLSPAN)
    except ValueError:
        return 1
