"""The one form a table takes in rag-qa's text, whatever format it came from (a spreadsheet, a
PDF page, a Word, OpenDocument, PowerPoint or HTML table): the header row once, then one line per row naming each cell by
its column's header ("Tool: Drill; Deposit: 30").

Why this form: a span reader answers from a passage, and a value is only answerable when the words
that say what it is sit next to it. In a table as a PDF or HTML parser reads it, a value is
hundreds of characters from its header and nothing marks where a row ends.
"""

from __future__ import annotations

from collections.abc import Sequence

FIELD_SEPARATOR = "; "
HEADER_SEPARATOR = " | "


def header_line(header: Sequence[str]) -> str:
    """The header row as one line (empty headers left out, a header spanning columns once)."""
    return HEADER_SEPARATOR.join(name for i, name in enumerate(header) if name and (i == 0 or name != header[i - 1]))


def row_line(header: Sequence[str], cells: Sequence[str]) -> str:
    """One row as "header: value" pairs; a cell without a header stands alone, an empty cell is left out."""
    named = [f"{header[i]}: {cell}" if i < len(header) and header[i] else cell for i, cell in enumerate(cells) if cell]
    return FIELD_SEPARATOR.join(named)


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> list[str]:
    """A table's lines: its title (a caption or sheet name) if any, the header, then each row."""
    lines = [title] if title else []
    if any(header):
        lines.append(header_line(header))
    lines += [line for line in (row_line(header, cells) for cells in rows) if line]
    return lines


def grid_lines(grid: Sequence[Sequence[str]], header: bool = True, title: str = "") -> list[str]:
    """A table given as rows of cells by position (a merged cell's text at its first position,
    its other positions empty; in the header row repeated, so each column it spans is named):
    the first row is the header unless not `header`. Rows without text are left out."""
    rows = [[" ".join(cell.split()) for cell in row] for row in grid]
    rows = [row for row in rows if any(row)]
    if not rows:
        return [title] if title else []
    return table_lines(rows[0], rows[1:], title) if header else table_lines((), rows, title)

