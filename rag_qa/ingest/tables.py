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


MAX_HEADER_WORDS = 8  # a field's header is short; longer text before ": " is prose (units and numbers, "(km s −1 )", do not count)


def row_fields(line: str) -> list[tuple[int, int, int]] | None:
    """The fields of a row line (`row_line`'s form) as (start, value start, end) offsets in the
    line, or None when the line is not a row: two fields or more, each "header: value" with a
    short header or a short cell without one (a row label), two with headers at least."""
    fields, start = [], 0
    while start <= len(line):
        end = line.find(FIELD_SEPARATOR, start)
        end = len(line) if end < 0 else end
        colon = line.find(": ", start, end)
        if colon >= 0 and _wordy(line[start:colon]) <= MAX_HEADER_WORDS:
            fields.append((start, colon + 2, end))
        elif len(line[start:end].split()) <= MAX_HEADER_WORDS:
            fields.append((start, start, end))  # a cell without a header (a row label)
        else:
            return None
        start = end + len(FIELD_SEPARATOR)
    named = sum(value > start for start, value, _ in fields)
    return fields if len(fields) >= 2 and named >= 2 else None


def _wordy(text: str) -> int:
    """How many words of two letters or more `text` holds."""
    return sum(sum(ch.isalpha() for ch in word) >= 2 for word in text.split())


def line_bounds(text: str, offset: int) -> tuple[int, int]:
    """[start, end) of the line of `text` that holds `offset` (its line break left out)."""
    end = text.find("\n", offset)
    return text.rfind("\n", 0, offset) + 1, len(text) if end < 0 else end


def row_line_at(text: str, offset: int) -> tuple[int, int] | None:
    """[start, end) of the table row line of `text` holding `offset`, or None when that line is
    not a row: where a passage may not begin or end."""
    start, end = line_bounds(text, offset)
    return (start, end) if FIELD_SEPARATOR in text[start:end] and row_fields(text[start:end]) is not None else None


def cell_span(text: str, start: int, end: int, rows: frozenset[int] | None = None) -> tuple[int, int] | None:
    """An answer span [start, end) of `text` made to fit a table row: a span inside one cell's
    value becomes the whole value ("1,000" of "1 in 1,000"); one across cells, onto a header, in
    the header line, across rows or in a row not among `rows` (`matching_rows`) is no answer
    (None). A span outside table rows is returned as it is."""
    line_start, line_end = line_bounds(text, start)
    crosses = end > line_end
    fields = row_fields(text[line_start:line_end])
    if fields is None and HEADER_SEPARATOR in text[line_start:line_end] and row_fields(text[line_end + 1 :].split("\n", 1)[0]) is not None:
        return None  # the header line above a table's rows: column names, not an answer
    if fields is None:
        if crosses and row_fields(text[text.rfind("\n", 0, end) + 1 : end] + text[end:].split("\n", 1)[0]) is not None:
            return None  # runs into a table row
        return (start, end)
    if crosses or (rows is not None and line_start not in rows):
        return None  # across rows, or a row the question does not name
    for field_start, value_start, field_end in fields:
        if line_start + field_start <= start and end <= line_start + field_end:
            if end <= line_start + value_start:
                return None  # the header itself
            return (line_start + value_start, line_start + field_end)
    return None
