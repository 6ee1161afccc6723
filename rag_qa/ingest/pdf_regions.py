"""Where a PDF page's tables are (from its geometry, `pdf_layout`): the page's lines, ruled and
unruled table regions, their columns and captions, and what is not a table.

How a region is found (checked on real manuals and papers: benchmarks/pdf_tables.py):
- Ruled: horizontal rules of one width stacked on the page, with rows of two or more cells between
  them (a full grid, or booktabs' top, middle and bottom rules). Rules of another width are another
  table, so two tables side by side stay apart. A table drawn without a top rule takes the line of
  short cells right above its first rule as its header.
- Unruled: three or more lines in a row whose words fall into the same columns, with short cells
  (prose runs longer; a two-column page's lines are prose), and a caption, three columns, or
  numbers under a header of words; not a matrix between tall brackets.
- Not a table: a region drawn over by graphics that hold no text (bars, plots, pictures), or a
  shaded box (code, notes).
Columns are the vertical rules where there are some, else the gaps that every body row leaves
open (computed on whole words, so a right-aligned number never cuts a header word in two).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from rag_qa.ingest.pdf_layout import Box, PageLayout, Word

CELL_GAP = 0.8  # font sizes: a gap this wide between words separates two cells (a word space is about 0.3)
COLUMN_GAP = 0.5  # font sizes: the least gap every body row leaves open between two columns
ROW_PITCH = 2.2  # font sizes: the most from one row's middle to the next in an unruled table
MAX_CELL_WORDS = 6  # an unruled table's cells are short; prose is longer
MAX_PROSE_WORDS = 14  # a line with more words than this beside its first cell is prose (a table's text cells are narrower)
MIN_UNRULED_ROWS = 3
ALIGNED_SHARE = 0.8  # of a table's rows with a word starting at one x: a column's left edge
MIN_ALIGNED_ROWS = 5
MAX_BAND_SHARE = 0.95  # of the page's height: a taller band between two rules is the page's body, not a table's rows (a long table takes most of a page)
CAPTION_DISTANCE = 3.0  # font sizes between a table and its caption
CAPTION = re.compile(r"^(?:Table|TABLE|Tab\.)\s*[0-9IVXLA-Z][0-9.\-]*[.:]?(?:\s|$)")
BRACKET_PIECE = re.compile("[\u239b-\u23ad\uf8e5-\uf8ff]")  # pieces of tall brackets (Unicode's, and TeX symbol fonts' private ones)
NUMBER = re.compile(r"^[(\[<>≈~±+\-−–]?\$?\d[\d.,]*(?:[eE][+\-−]?\d+)?\s*[%)\]*†‡]?\s*\S{0,4}$")


@dataclass
class Line:
    """Words on one line of the page, left to right."""

    words: list[Word] = field(default_factory=list)

    @property
    def middle(self) -> float:
        return sum(w.centre_y for w in self.words) / len(self.words)

    @property
    def size(self) -> float:
        return max(w.size for w in self.words) or 1.0

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass(frozen=True)
class Region:
    box: Box
    rules: tuple[float, ...] = ()  # heights of the full rules inside the region, top first


def page_lines(words: tuple[Word, ...]) -> list[Line]:
    """Words grouped into lines across the whole page (a two-column page's lines side by side
    are one line here), top to bottom."""
    lines: list[Line] = []
    for word in sorted(words, key=lambda w: -w.centre_y):
        if lines and abs(word.centre_y - lines[-1].middle) <= 0.5 * max(word.size, lines[-1].size):
            lines[-1].words.append(word)
        else:
            lines.append(Line([word]))
    for line in lines:
        line.words.sort(key=lambda w: w.box[0])
    return lines


def column_halves(lines: list[Line], layout: PageLayout) -> list[list[Line]]:
    """A two-column page's lines split at its gutter (a gap near the middle that most lines
    with words on both sides leave open), so a table in one column is seen without the other's
    prose; a one-column page's lines as they are."""
    gaps = [[(a.box[2], b.box[0]) for a, b in zip(line.words, line.words[1:]) if b.box[0] - a.box[2] >= CELL_GAP * line.size] for line in lines]
    best, best_count = 0.0, 0
    for x in range(int(0.3 * layout.width), int(0.7 * layout.width), 2):
        count = sum(any(left <= x <= right for left, right in line_gaps) for line_gaps in gaps)
        if count > best_count:
            best, best_count = float(x), count
    if best_count < 0.4 * len(lines) or best_count < 5:
        return [lines]
    left = [Line([w for w in line.words if w.centre_x < best]) for line in lines]
    right = [Line([w for w in line.words if w.centre_x >= best]) for line in lines]
    return [[line for line in left if line.words], [line for line in right if line.words]]


def segments_of(words: list[Word], vrules: tuple[Box, ...] = ()) -> list[list[Word]]:
    """A line's words split into cells at wide gaps and at vertical rules."""
    segments: list[list[Word]] = []
    for word in words:
        if segments:
            before = segments[-1][-1]
            gap = word.box[0] - before.box[2]
            crossed = any(before.box[2] - 1 <= r[0] <= word.box[0] + 1 and r[1] <= word.centre_y <= r[3] for r in vrules)
            if gap < CELL_GAP * max(word.size, before.size) and not crossed:
                segments[-1].append(word)
                continue
        segments.append([word])
    return segments


def inside(word: Word, box: Box, margin: float = 1.0) -> bool:
    return box[0] - margin <= word.centre_x <= box[2] + margin and box[1] - margin <= word.centre_y <= box[3] + margin


def _merged_hrules(hrules: tuple[Box, ...]) -> list[Box]:
    """Horizontal rules drawn in pieces (one per cell) joined into one rule each."""
    merged: list[list[float]] = []
    for left, bottom, right, top in sorted(hrules, key=lambda r: (round((r[1] + r[3]) / 2), r[0])):
        if merged and abs((bottom + top) / 2 - (merged[-1][1] + merged[-1][3]) / 2) <= 1.0 and left - merged[-1][2] <= 3.0:
            merged[-1][2] = max(merged[-1][2], right)
        else:
            merged.append([left, bottom, right, top])
    return [tuple(r) for r in merged]  # type: ignore[misc]


def merged_vrules(vrules: tuple[Box, ...]) -> tuple[Box, ...]:
    """Vertical rules drawn in pieces (one per row) joined, as `_merged_hrules` (x and y swapped)."""
    swapped = _merged_hrules(tuple((b, l, t, r) for l, b, r, t in vrules))
    return tuple((l, b, r, t) for b, l, t, r in swapped)


def ruled_regions(layout: PageLayout, lines: list[Line]) -> list[Region]:
    """Stacks of rules of one width with table rows between them."""
    rules = [r for r in _merged_hrules(layout.hrules) if r[2] - r[0] >= 30]
    groups: list[list[Box]] = []
    for rule in sorted(rules, key=lambda r: -r[3]):
        group = next((g for g in groups if abs(g[0][0] - rule[0]) <= 4 and abs(g[0][2] - rule[2]) <= 4), None)
        if group is None:
            groups.append([rule])
        else:
            group.append(rule)
    regions = []
    for group in groups:
        run: list[Box] = [group[0]]
        for upper, lower in zip(group, group[1:]):
            if _tabular_band(layout, lines, (upper[0], lower[3], upper[2], upper[1])):
                run.append(lower)
                continue
            regions += _ruled_region(run, layout, lines)
            run = [lower]
        regions += _ruled_region(run, layout, lines)
    return regions


def _tabular_band(layout: PageLayout, lines: list[Line], box: Box) -> bool:
    """Whether the lines between two rules are table rows: their words fall into two columns or
    more (split by a vertical rule or a gap no line bridges; a cell may take several lines, its
    label set between them), or it is one short line (a section row)."""
    if box[3] - box[1] > MAX_BAND_SHARE * layout.height:
        return False
    band = [[w for w in line.words if inside(w, box)] for line in lines]
    band = [words for words in band if words]
    if len(band) <= 1:
        return not band or len(band[0]) <= MAX_CELL_WORDS or len(segments_of(band[0], layout.vrules)) >= 2
    if any(_prose(words, layout, box[2] - box[0]) for words in band):
        return False  # a line of prose (beside a label): a note, or a paragraph between two rules
    return len(columns_of(band, box, layout)) >= 2


def _prose(words: list[Word], layout: PageLayout, width: float) -> bool:
    """Whether a line is prose: a cell of many words across most of the width, or many words
    beside its first cell. Only words of two letters or more count as many: a formula's symbols
    ("x + (1 | g)") are not prose."""
    segments = segments_of(words, layout.vrules)
    wordy = [sum(_is_word(w) for w in s) for s in segments]
    if any(n > MAX_CELL_WORDS * (1 if i == 0 else 2) and s[-1].box[2] - s[0].box[0] >= 0.75 * width for i, (s, n) in enumerate(zip(segments, wordy))):
        return True  # a wide cell of many words: twice as many beside a first cell (a description column)
    return max(wordy) > MAX_PROSE_WORDS or sum(wordy) - wordy[0] > MAX_PROSE_WORDS


def _is_word(word: Word) -> bool:
    return sum(ch.isalpha() for ch in word.text) >= 2


def _ruled_region(run: list[Box], layout: PageLayout, lines: list[Line]) -> list[Region]:
    if len(run) < 2:
        return []
    box = (min(r[0] for r in run), run[-1][3], max(r[2] for r in run), run[0][1])
    inner = [line for line in lines if any(inside(w, box) for w in line.words)]
    if len(inner) < 2 or box[1] < 0 or box[3] > layout.height:
        return []
    heights = tuple((r[1] + r[3]) / 2 for r in run[1:-1])
    header = _header_above(box, lines)
    if header is not None:  # no top rule: the header sits above the rule under it
        return [Region((box[0], box[1], box[2], max(w.box[3] for w in header.words) + 1.0), ((box[3] + run[0][1]) / 2, *heights))]
    return [Region(box, heights)]


def _header_above(box: Box, lines: list[Line]) -> Line | None:
    """The header row of a table drawn without a top rule: one line of short cells right above
    its first rule, within its width, that is not its caption."""
    near = [line for line in lines if 0 < line.middle - box[3] <= ROW_PITCH * line.size / 2 and line.words[0].box[0] >= box[0] - 2.0]
    if len(near) != 1 or near[0].words[-1].box[2] > box[2] + 2.0 or CAPTION.match(near[0].text):
        return None
    return near[0] if len(segments_of(near[0].words)) >= 2 and max(len(s) for s in segments_of(near[0].words)) <= MAX_CELL_WORDS else None


def unruled_regions(layout: PageLayout, lines: list[Line], taken: list[Box]) -> list[Region]:
    """Runs of lines of short cells, close together, falling into the same columns."""
    regions: list[Region] = []
    run: list[Line] = []
    for line in lines + [Line()]:
        fits = bool(line.words) and not any(inside(w, t, 2.0) for w in line.words for t in taken) and _cell_line(line)
        if fits and run and run[-1].middle - line.middle > ROW_PITCH * max(line.size, run[-1].size):
            fits = False  # too far below: starts a run of its own
            regions += _unruled_region(run, layout, lines)
            run = [line]
            continue
        if fits:
            run.append(line)
        else:
            regions += _unruled_region(run, layout, lines)
            run = []
    return regions


def _cell_line(line: Line) -> bool:
    segments = segments_of(line.words)
    return len(segments) >= 2 and max(len(s) for s in segments) <= MAX_CELL_WORDS


def _unruled_region(run: list[Line], layout: PageLayout, lines: list[Line]) -> list[Region]:
    if len(run) < MIN_UNRULED_ROWS:
        return []
    words = [w for line in run for w in line.words]
    if any(BRACKET_PIECE.search(w.text) for w in words):
        return []  # a matrix or a cases array between tall brackets: an equation
    box = (min(w.box[0] for w in words), min(w.box[1] for w in words), max(w.box[2] for w in words), max(w.box[3] for w in words))
    columns = columns_of([line.words for line in run[1:]], box, layout)
    if len(columns) < 2:
        return []
    filled = [len({column_of(w, columns) for w in line.words}) for line in run]
    if sum(n >= 2 for n in filled) * 3 < 2 * len(run):
        return []
    numeric_rows = sum(any(NUMBER.match(" ".join(w.text for w in s)) for s in segments_of(line.words)) for line in run[1:])
    header_words = not any(NUMBER.match(w.text) for w in run[0].words)
    if len(columns) >= 3 or caption_of(lines, box) or (len(run) >= 4 and header_words and numeric_rows * 2 >= len(run) - 1):
        return [Region(box)]
    return []


def columns_of(body: list[list[Word]], box: Box, layout: PageLayout) -> list[tuple[float, float]]:
    """Column extents: the runs of x that body rows fill, split where every row leaves a gap (a
    line of one cell spanning most of the table, a section title, is left out); where vertical
    rules cross the table, the columns between them, each split that way too (a rule around a
    group of columns, "GLM" over four models' estimates)."""
    height = box[3] - box[1]
    cuts = sorted({round((r[0] + r[2]) / 2, 1) for r in layout.vrules if r[0] > box[0] + 3 and r[2] < box[2] - 3 and min(r[3], box[3]) - max(r[1], box[1]) >= 0.5 * height})
    if not cuts:
        return _gap_columns(body, box[2] - box[0])
    edges = [box[0], *[c for i, c in enumerate(cuts) if i == 0 or c - cuts[i - 1] > 3], box[2]]
    columns: list[tuple[float, float]] = []
    for left, right in zip(edges, edges[1:]):
        parts = _gap_columns([inside for words in body if (inside := [w for w in words if left <= w.centre_x < right])], right - left)
        columns += parts if len(parts) >= 2 else [(left, right)]
    return columns


def _gap_columns(body: list[list[Word]], width: float) -> list[tuple[float, float]]:
    counted = [(words, len(segments_of(words))) for words in body]
    rows = [words for words, count in counted if not (count == 1 and words[-1].box[2] - words[0].box[0] > 0.5 * width)]
    cells = [words for words, count in counted if count >= 2]
    if len(cells) >= MIN_ALIGNED_ROWS:
        rows = cells  # a line of one cell (a sub-table's centred title) does not bridge the columns the rows leave open
    spans = sorted((w.box[0], w.box[2], w.size) for words in rows for w in words)
    aligned = _aligned_starts(rows)
    columns: list[list[float]] = []
    for left, right, size in spans:
        gap = left - columns[-1][1] if columns else 0.0
        if columns and gap < COLUMN_GAP * size and not (gap > 0 and round(left) in aligned):
            columns[-1][1] = max(columns[-1][1], right)
        else:
            columns.append([left, right])
    return _joined_across_cells(columns, rows, aligned)


def _aligned_starts(rows: list[list[Word]]) -> frozenset[int]:
    """The x (whole points) where nearly every row starts a word after a column's gap: a
    left-aligned column's edge, a column even where a row's cell before it ends closer than
    that (a tight `tabular`: "Radiative Transfer" 2 pt short of the next column's "Journal").
    Words after a word space ("Level 1", "Level 2") make no edge."""
    if len(rows) < MIN_ALIGNED_ROWS:
        return frozenset()
    counts: dict[int, int] = {}
    for words in rows:
        for x in {round(b.box[0]) for a, b in zip(words, words[1:]) if b.box[0] - a.box[2] >= COLUMN_GAP * b.size}:
            counts[x] = counts.get(x, 0) + 1
    return frozenset(x for x, count in counts.items() if count >= ALIGNED_SHARE * len(rows))


def _joined_across_cells(columns: list[list[float]], rows: list[list[Word]], aligned: frozenset[int] = frozenset()) -> list[tuple[float, float]]:
    """Columns with those one cell of a row spans joined: the gaps between a formula's symbols
    ("0 + offset(o)") are open in every row, yet they are inside a cell, not between columns;
    never across a column's `aligned` left edge (a word space apart is not one cell there)."""
    starts = [c[0] for c in columns]
    with_previous = [False] * len(columns)  # column i is part of the same column as i - 1
    for words in rows:
        for cell in segments_of(words):
            first, last = (bisect_right(starts, w.box[0]) - 1 for w in (cell[0], cell[-1]))
            for index in range(first + 1, last + 1):
                with_previous[index] = with_previous[index] or round(starts[index]) not in aligned
    merged: list[tuple[float, float]] = []
    for index, (left, right) in enumerate(columns):
        if with_previous[index]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], right))
        else:
            merged.append((left, right))
    return merged


def column_of(word: Word, columns: list[tuple[float, float]]) -> int:
    x = word.centre_x
    for index, (left, right) in enumerate(columns):
        if left - 1 <= x <= right + 1:
            return index
    return min(range(len(columns)), key=lambda i: min(abs(x - columns[i][0]), abs(x - columns[i][1])))


def caption_of(lines: list[Line], box: Box) -> list[Line]:
    """The caption ("Table 3. ...") just above or below a table, with the lines that continue
    it; only the words within the table's width or the label's (a two-column page's other column
    is not caption)."""
    for index, line in enumerate(lines):
        for segment in segments_of(line.words):
            start = Line(segment)
            if not CAPTION.match(start.text) or segment[0].box[0] > box[2] or segment[-1].box[2] < box[0]:
                continue
            reach = (CAPTION_DISTANCE + 2) * start.size
            if not (abs(start.middle - box[3]) <= reach or abs(box[1] - start.middle) <= reach):
                continue
            left, right = min(segment[0].box[0], box[0]), max(segment[-1].box[2], box[2])
            start = Line([w for w in line.words if w.box[0] >= segment[0].box[0] and w.centre_x <= right + start.size])  # label and text
            caption = [start]
            for after in lines[index + 1 : index + 3]:
                words = [w for w in after.words if left - start.size <= w.centre_x <= right + start.size]
                if not words or caption[-1].middle - after.middle > 1.6 * start.size or box[1] < after.middle < box[3]:
                    break
                caption.append(Line(words))
            return caption
    return []


def shaded(box: Box, layout: PageLayout) -> bool:
    """Whether a region lies on a shaded box with text on it (a code listing, a note): aligned
    program output there is not a table."""
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(g[0] <= x <= g[2] and g[1] <= y <= g[3] and any(g[0] <= w.centre_x <= g[2] and g[1] <= w.centre_y <= g[3] for w in layout.words) for g in layout.graphics)


def is_figure(box: Box, layout: PageLayout) -> bool:
    """Whether graphics without text cover the region: a plot's bars and lines, a picture."""
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1.0)
    empty = []
    for g in layout.graphics:
        overlap = max(0.0, min(g[2], box[2]) - max(g[0], box[0])) * max(0.0, min(g[3], box[3]) - max(g[1], box[1]))
        if overlap <= 0.5 * max((g[2] - g[0]) * (g[3] - g[1]), 1e-6):
            continue
        if not any(g[0] <= w.centre_x <= g[2] and g[1] <= w.centre_y <= g[3] for w in layout.words):
            empty.append(overlap)
    return len(empty) >= 3 or sum(empty) > 0.3 * area
