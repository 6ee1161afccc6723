"""Tables on a PDF page: each region `pdf_regions` finds read as a header and rows, and the
page's text with each table written as rows that name every cell by its column's header
(`tables.table_lines`), its caption first.

The header is what lies above the first rule inside the table (booktabs' midrule), else the first
row, and a second row under a header cell that spans columns. Rows are the bands between rules
when each row has its own rule (cells on several lines are joined), else the lines, a line with an
empty first cell and no number continuing the row above. A table set as side-by-side parts under
one repeated header is read part after part. A table at the top of a page with the columns of the
previous page's last table and data in its first row is that table continued: it gets its header
and caption.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rag_qa.ingest.pdf_layout import Box, PageLayout, Word
from rag_qa.ingest.pdf_regions import (
    NUMBER, Line, Region, caption_of, column_halves, column_of, columns_of, inside, is_figure, merged_vrules, page_lines, ruled_regions,
    segments_of, shaded, unruled_regions,
)  # fmt: skip
from rag_qa.ingest.tables import row_line, table_lines

SOFT_HYPHEN = "\x02"  # pdfium's character for a hyphen TeX put at a line end
MAX_HEADER_LINES = 4  # a header above a table's first inner rule takes at most this many lines
MAX_BAND_LINES = 4  # a band between two rules with more lines than this holds several rows
COLUMN_NUMBER = re.compile(r"^\(\d{1,2}\)$")
ROW_BREAK = "\u2028"  # between a table's lines until the page is cleaned (cleaning joins lines a PDF wrapped)


@dataclass(frozen=True)
class Table:
    """A table found on a page: its box, header (one name per column), rows of cell texts,
    caption, and the page characters its text stands for."""

    box: Box
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str
    chars: frozenset[int]

    def lines(self) -> list[str]:
        """`tables.table_lines`, with a row that heads the rows under it (`_section_label`) as a
        short line ending in a colon ("Female:"), the form a section takes in a passage."""
        lines = table_lines(self.header, (), self.caption)
        for row in self.rows:
            label = _section_label(self.header, row)
            if label is None:
                lines += [line] if (line := row_line(self.header, row)) else []
            elif label:
                lines.append(f"{label}:")
        return lines


def _section_label(header: tuple[str, ...], row: tuple[str, ...]) -> str | None:
    """The label of a row that heads the rows under it, or None for a row of data: a row of its
    first cell alone (a group's name, a centred title), or the header repeated with another first
    cell ("Female" over "Control | Early Onset", the label; "" when it has none)."""
    rest = [(cell, name) for cell, name in zip(row[1:], header[1:]) if cell]
    if row[0] and not rest:
        return row[0]
    if len(rest) >= 2 and all(cell == name for cell, name in rest):
        return row[0]
    return None


def find_tables(layout: PageLayout, previous: Table | None = None) -> list[Table]:
    """The tables on a page, top to bottom. `previous` is the last table of the page before (a
    table continued here takes its header)."""
    layout = replace(layout, vrules=merged_vrules(layout.vrules))
    lines = page_lines(layout.words)
    regions = ruled_regions(layout, lines)
    taken = [r.box for r in regions]
    for half in column_halves(lines, layout):
        regions += [r for r in unruled_regions(layout, half, taken) if not shaded(r.box, layout)]
    tables = []
    for region in sorted(regions, key=lambda r: -r.box[3]):
        if is_figure(region.box, layout):
            continue
        table = _table(region, layout, lines, previous if not tables else None)
        if table is not None:
            tables.append(table)
    return tables


def page_text(layout: PageLayout, tables: list[Table]) -> str:
    """The page's text in pdfium's order with each table's characters replaced by the table's
    lines (at the place of its first character), set apart as a paragraph, and the page's
    furniture (margin line numbers) left out with the space after it."""
    owner = {index: number for number, table in enumerate(tables) for index in table.chars}
    parts: list[str] = []
    for index, char in enumerate(layout.chars):
        number = owner.get(index)
        if index in layout.furniture or (char == " " and index - 1 in layout.furniture):
            continue
        if number is None:
            parts.append(char)
        elif number >= 0:
            parts.append("\n\n" + ROW_BREAK.join(tables[number].lines()) + "\n\n")
            for other in tables[number].chars:
                owner[other] = -1  # written
    return "".join(parts)


def _table(region: Region, layout: PageLayout, lines: list[Line], previous: Table | None) -> Table | None:
    inner = [Line([w for w in line.words if inside(w, region.box)]) for line in lines]
    inner = [line for line in inner if line.words]
    header_count = _header_count(region, inner)
    columns = columns_of([line.words for line in inner[header_count:]], region.box, layout)
    if len(columns) < 2 or len(inner) < 2:
        return None
    caption_lines = caption_of(lines, region.box)
    caption = " ".join(line.text for line in caption_lines)
    header = _header([line for line in inner[:header_count] if not _numbering(line)], columns, layout)
    body_lines = inner[header_count:]
    continued = previous is not None and len(previous.header) == len(columns) and region.box[3] > 0.6 * layout.height and _has_number(inner[0])
    if continued:
        header, body_lines = previous.header, inner  # type: ignore[union-attr]
        caption = caption or (f"{previous.caption} (continued)" if previous.caption else "")  # type: ignore[union-attr]
    header, rows = _unfolded(header, _rows(region, body_lines, columns))
    if sum(bool(header[i]) + sum(bool(row[i]) for row in rows) >= 2 for i in range(len(header))) < 2:
        return None  # a label beside a paragraph (a note or tip box), not a table: two columns need two entries each
    chars = frozenset(i for line in inner + caption_lines for w in line.words for i in w.chars)
    return Table(region.box, tuple(header), tuple(tuple(r) for r in rows), caption, chars)


def _unfolded(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """A table set as two or three side-by-side parts under one repeated header ("Ion | r | Ion | r")
    as one table: each part's rows after the previous part's, as a person reads it."""
    for parts in (2, 3):
        width = len(header) // parts
        if width < 2 or width * parts != len(header) or not any(header[:width]):
            continue
        if all(header[i * width : (i + 1) * width] == header[:width] for i in range(parts)):
            return header[:width], [row[i * width : (i + 1) * width] for i in range(parts) for row in rows if any(row[i * width : (i + 1) * width])]
    return header, rows


def _header_count(region: Region, inner: list[Line]) -> int:
    """How many lines the header takes: those above the first rule inside a ruled table with
    lines above it (up to MAX_HEADER_LINES), else one, or two when the first holds a cell
    spanning columns above words."""
    for rule in region.rules:  # the first with lines above it (a double top rule has none)
        above = [line for line in inner if line.middle > rule]
        if above:
            return len(above) if len(above) <= MAX_HEADER_LINES else 1
    if region.rules:
        return 1
    if len(inner) >= 3 and len(segments_of(inner[0].words)) < len(segments_of(inner[1].words)) and not _has_number(inner[1]):
        return 2
    return 1


def _numbering(line: Line) -> bool:
    """Whether a header line only numbers the columns ("(1) (2) (3)"): no part of their names."""
    return all(COLUMN_NUMBER.match(word.text) for word in line.words)


def _has_number(line: Line) -> bool:
    return any(NUMBER.match(" ".join(w.text for w in segment)) for segment in segments_of(line.words))


def _header(header_lines: list[Line], columns: list[tuple[float, float]], layout: PageLayout) -> list[str]:
    """One name per column: the header lines' cells in it, top to bottom; a cell of an upper
    header line over two columns or more names each of them ("Model A" over "Mean" and "SD":
    "Model A Mean", "Model A SD")."""
    names: list[list[str]] = [[] for _ in columns]
    width = columns[-1][1] - columns[0][0]  # a rule this wide is the table's own, not one under a spanning cell
    bounds = [columns[0][0] - 1e6, *[(a[1] + b[0]) / 2 for a, b in zip(columns, columns[1:])], columns[-1][1] + 1e6]
    for number, line in enumerate(header_lines):
        for segment in segments_of(line.words, layout.vrules):
            left, right = segment[0].box[0], segment[-1].box[2]
            under = [
                r for r in layout.hrules
                if r[0] - 1 <= left and right <= r[2] + 1 and 0 <= segment[0].box[1] - r[3] <= 1.5 * segment[0].size and r[2] - r[0] < 0.9 * width
            ]  # fmt: skip
            walls = _walls(segment, line, layout)
            if under:  # a rule under the cell (booktabs' cmidrule) says which columns it spans
                covered = [i for i, (a, b) in enumerate(columns) if under[0][0] <= (a + b) / 2 <= under[0][2]]
            elif walls is not None:  # alone between two vertical rules: it names every column between them
                covered = [i for i, (a, b) in enumerate(columns) if walls[0] <= (a + b) / 2 <= walls[1]]
            else:
                overlaps = [min(right, bounds[i + 1]) - max(left, bounds[i]) for i in range(len(columns))]
                covered = [i for i, overlap in enumerate(overlaps) if overlap >= 0.2 * (right - left)]
            if len(covered) >= 2 and number < len(header_lines) - 1:
                for i in covered:
                    names[i].append(_joined(segment))
                continue
            by_column: dict[int, list[Word]] = {}
            for word in segment:
                by_column.setdefault(column_of(word, columns), []).append(word)
            for i, words in by_column.items():
                names[i].append(_joined(words))
    return [" ".join(parts) for parts in names]


def _walls(segment: list[Word], line: Line, layout: PageLayout) -> tuple[float, float] | None:
    """The vertical rules either side of a header cell that has them to itself on its line."""
    y = segment[0].centre_y
    crossing = sorted((r[0] + r[2]) / 2 for r in layout.vrules if r[1] - 1 <= y <= r[3] + 1)
    left = max((x for x in crossing if x <= segment[0].box[0]), default=None)
    right = min((x for x in crossing if x >= segment[-1].box[2]), default=None)
    if left is None or right is None or any(left < w.centre_x < right for w in line.words if w not in segment):
        return None
    return left, right


def _rows(region: Region, body: list[Line], columns: list[tuple[float, float]]) -> list[list[str]]:
    """Cell texts row by row (see the module docstring for what makes a row)."""
    groups = _row_groups(region, body, columns)
    by_line = len(groups) == len(body)
    rows: list[list[str]] = []
    for group in groups:
        for number, lines in enumerate(group):
            texts = [_joined(words) for words in _cells(lines, columns)]
            if number:  # a later row of a group: its empty leading cells are the group's labels above
                leading = next((i for i, text in enumerate(texts) if text), len(texts))
                texts = [*rows[-1][:leading], *texts[leading:]]
            continues = by_line and rows and not texts[0] and not any(NUMBER.match(t) for t in texts if t)
            if _spanning_title(lines, columns):  # a centred title over several columns ("TNFA_238 locus") heads the rows under it
                rows.append([_joined([w for line in lines for w in line.words]), *[""] * (len(columns) - 1)])
            elif continues:
                rows[-1] = [f"{a} {b}".strip() if b else a for a, b in zip(rows[-1], texts)]
            else:
                rows.append(texts)
    return [row for row in rows if any(row)]


def _spanning_title(lines: list[Line], columns: list[tuple[float, float]]) -> bool:
    """Whether a row is one line of one cell over two columns or more, not the first: a title
    over the rows under it, not a cell wrapped from the row above."""
    if len(lines) != 1 or len(segments_of(lines[0].words)) != 1:
        return False
    left, right = lines[0].words[0].box[0], lines[0].words[-1].box[2]
    bounds = [(a[1] + b[0]) / 2 for a, b in zip(columns, columns[1:])]  # the middles of the gaps between columns
    return bool(bounds) and left > bounds[0] and any(left < bound < right for bound in bounds)


def _cells(lines: list[Line], columns: list[tuple[float, float]]) -> list[list[Word]]:
    cells: list[list[Word]] = [[] for _ in columns]
    for line in lines:
        for word in line.words:
            cells[column_of(word, columns)].append(word)
    return cells


def _row_groups(region: Region, body: list[Line], columns: list[tuple[float, float]]) -> list[list[list[Line]]]:
    """Rows (each a list of lines) in groups: one row per band between rules when the rules part
    every row; a band of many lines between rules that part groups of rows cut into its rows
    (`_rows_of_band`); else each line a row of its own."""
    cuts = list(region.rules[1:])
    if cuts:
        bands: list[list[Line]] = [[]]
        remaining = list(cuts)
        for line in body:
            while remaining and line.middle < remaining[0]:
                remaining.pop(0)
                if bands[-1]:
                    bands.append([])
            bands[-1].append(line)
        if len(bands) >= 2 and max(len(b) for b in bands) <= MAX_BAND_LINES:
            return [[band] for band in bands]
        if len(bands) >= 2:
            return [_rows_of_band(band, columns) for band in bands]
    return [[[line]] for line in body]


def _rows_of_band(band: list[Line], columns: list[tuple[float, float]]) -> list[list[Line]]:
    """A band of several rows between two rules cut into rows: a line goes on the row above
    unless it has words in a column whose text on that row ended short of the column's edge
    (a cell that did not wrap, so the line starts a new row: "ML" then "quasi"), or fills two
    columns or more: more than the line above (which held only a wrapped cell's text), or as
    many as the row's first line, or is a title over columns (`_spanning_title`), or a label with
    numbers beside it under a labelled row."""
    def filled(line: Line) -> set[int]:
        return {column_of(word, columns) for word in line.words}

    rows = [[band[0]]]
    for above, line in zip(band, band[1:]):
        used = filled(line)
        full = len(used) >= 2 and (len(used) > len(filled(above)) or len(used) >= len(filled(rows[-1][0])))
        starts = full or _spanning_title([line], columns) or _labelled_numbers(line, columns) and 0 in filled(rows[-1][0])
        if starts or any(_ended_short(rows[-1], index, columns) for index in used):
            rows.append([line])
        else:
            rows[-1].append(line)
    return rows


def _labelled_numbers(line: Line, columns: list[tuple[float, float]]) -> bool:
    """Whether a line is a label in the first column and numbers beside it ("log L  −17971.6"):
    a row of its own, not more of the row above, when that row has its own label."""
    cells = [_joined(words) for words in _cells([line], columns)]
    return bool(cells[0]) and any(cells[1:]) and all(NUMBER.match(cell) for cell in cells[1:] if cell)


def _ended_short(lines: list[Line], index: int, columns: list[tuple[float, float]]) -> bool:
    """Whether the last text of column `index` on these lines stops short of the column's right
    edge (by more than a quarter of its width and a font size and a half): a cell that ended there."""
    words = [w for line in lines for w in line.words if column_of(w, columns) == index]
    if not words:
        return False  # an empty cell: a label set lower down may still come
    left, right = columns[index]
    last = [w for w in words if w.centre_y <= words[-1].box[3] and w.centre_y >= words[-1].box[1]]
    return max(w.box[2] for w in last) < right - max(0.25 * (right - left), 1.5 * words[-1].size)


def _joined(words: list[Word]) -> str:
    """Words of a cell as text, a word hyphenated at a line end joined again (pdfium reads TeX's
    soft hyphen as U+0002)."""
    text = ""
    for word in words:
        if text.endswith(SOFT_HYPHEN):
            text = text[:-1] + word.text
        elif text.endswith("-") and len(text) > 1 and text[-2].isalpha() and word.text[:1].islower() and word.box[3] < words[0].box[1]:
            text = text[:-1] + word.text
        else:
            text = f"{text} {word.text}" if text else word.text
    return text.replace(SOFT_HYPHEN, "")
