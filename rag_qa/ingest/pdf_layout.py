"""One PDF page's geometry as pdfium reports it: each character with its box and font size, the
words they form, the ruling lines, and the graphics (pictures, plots, shaded boxes). Tables are
found from this (`pdf_tables`); it runs in the guarded worker with the rest of PDF extraction.

Why pdfium's characters and not another parser's: pdfium already gives the text rag-qa indexes
and the boxes answers are marked with, and it places word gaps from glyph positions (TeX PDFs have
no space glyphs; pdfplumber's default tolerances glue such words together). Reading every
character's box costs about 3 ms a page (benchmarks/pdf_tables.py).
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

Box = tuple[float, float, float, float]  # left, bottom, right, top in PDF page space (points, y up)

RULE_THICKNESS = 2.5  # points: a line or filled rectangle at most this thick is a ruling line
RULE_MIN_LENGTH = 8.0  # points: shorter strokes are marks (bullets, underlines of a letter)
MAX_PATH_SEGMENTS = 400  # a path with more segments is a drawing (a plot), not a set of rules
SUPERSCRIPT_SHRINK = 0.8  # a glyph this much smaller than the one before it, and raised, starts a new word (a footnote mark)
MIN_LINE_NUMBERS = 5  # numbers in a margin, one above the other and rising down the page, that number the lines
LINE_NUMBER_ALIGN = 2.0  # points: line numbers share a left or a right edge within this
LINE_NUMBER_SHRINK = 0.8  # line numbers are set smaller than the text: at most this share of its usual size


@dataclass(frozen=True)
class Word:
    """A run of characters without a gap, with its box, its font size and where its characters
    are in the page's character list."""

    text: str
    box: Box
    size: float
    chars: tuple[int, ...]

    @property
    def centre_x(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    @property
    def centre_y(self) -> float:
        return (self.box[1] + self.box[3]) / 2


@dataclass(frozen=True)
class PageLayout:
    """pdfium's characters of one page (one per index, generated spaces and line breaks
    included), its words, ruling lines and graphics."""

    chars: str
    words: tuple[Word, ...]
    hrules: tuple[Box, ...]
    vrules: tuple[Box, ...]
    graphics: tuple[Box, ...]
    width: float
    height: float
    furniture: frozenset[int] = frozenset()  # characters that are not the page's text: margin line numbers


def read_layout(page, textpage) -> PageLayout:  # type: ignore[no-untyped-def]
    """The layout of a pypdfium2 page whose text page is already loaded."""
    import pypdfium2.raw as pdfium_c

    chars, boxes, sizes = read_characters(textpage.raw)
    hrules: list[Box] = []
    vrules: list[Box] = []
    graphics: list[Box] = []
    for obj in page.get_objects(max_depth=0):
        kind = pdfium_c.FPDFPageObj_GetType(obj.raw)
        if kind == pdfium_c.FPDF_PAGEOBJ_PATH:
            _path_parts(obj, pdfium_c, hrules, vrules, graphics)
        elif kind in (pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_FORM, pdfium_c.FPDF_PAGEOBJ_SHADING):
            graphics.append(tuple(obj.get_bounds()))  # type: ignore[arg-type]
    width, height = page.get_width(), page.get_height()
    turn = _quarter_turns(textpage.raw, pdfium_c, boxes)
    if turn:  # text set sideways (a landscape table on a portrait page): read it in its own direction
        boxes = [None if b is None else _turned(b, turn, width, height) for b in boxes]
        hrules, vrules = [_turned(b, turn, width, height) for b in vrules], [_turned(b, turn, width, height) for b in hrules]
        graphics = [_turned(b, turn, width, height) for b in graphics]
        width, height = height, width
    words = _words(chars, boxes, sizes)
    numbers = margin_line_numbers(words)
    furniture = frozenset(i for word in numbers for i in word.chars)
    text_words = tuple(word for word in words if word.chars[0] not in furniture)
    return PageLayout(chars, text_words, tuple(hrules), tuple(vrules), tuple(graphics), width, height, furniture)


def margin_line_numbers(words: list[Word]) -> list[Word]:
    """The line numbers of a journal's review layout ("419 D. IAU RECOMMENDATIONS … 420 The IAU"),
    else none: MIN_LINE_NUMBERS or more numbers sharing a left or right edge, rising from the top
    of the page down, in a smaller type than the page's text, all in a margin (no other word of
    the page further out). A column of numbers inside the text (a numbered list's) is not in a
    margin; a table's row numbers or a contents page's page numbers, leftmost or rightmost on
    their page, are set in the text's own size: they stay."""
    numbers = [word for word in words if word.text.isdigit() and len(word.text) <= 5]
    if len(numbers) < MIN_LINE_NUMBERS:
        return []
    found: list[Word] = []
    for edge in (0, 2):  # left-aligned, then right-aligned numbers
        groups: dict[int, list[Word]] = {}
        for word in numbers:
            groups.setdefault(round(word.box[edge] / LINE_NUMBER_ALIGN), []).append(word)
        for group in groups.values():
            if _numbers_lines(group, words):
                found.extend(word for word in group if word not in found)
    return found


def _usual_size(words: list[Word]) -> float:
    """The font size most of a page's characters are set in (weighted by characters)."""
    sizes = sorted((word.size, len(word.chars)) for word in words)
    half, seen = sum(count for _, count in sizes) / 2, 0
    for size, count in sizes:
        seen += count
        if seen >= half:
            return size
    return 0.0


def _numbers_lines(group: list[Word], words: list[Word]) -> bool:
    if len(group) < MIN_LINE_NUMBERS:
        return False
    down = sorted(group, key=lambda word: -word.box[3])
    values = [int(word.text) for word in down]
    if any(a >= b for a, b in zip(values, values[1:])):
        return False
    members = {id(word) for word in group}
    others = [word for word in words if id(word) not in members]
    if not others or max(word.size for word in group) > LINE_NUMBER_SHRINK * _usual_size(others):
        return False
    left_margin = max(word.box[2] for word in group) <= min(word.box[0] for word in others)
    right_margin = min(word.box[0] for word in group) >= max(word.box[2] for word in others)
    return left_margin or right_margin


def _quarter_turns(raw, pdfium_c, boxes: list[Box | None]) -> int:  # type: ignore[no-untyped-def]
    """1 or 3 when most of the page's characters are turned a quarter (text running up or down), else 0."""
    votes = [0, 0, 0, 0]
    for index, box in enumerate(boxes):
        if box is not None:
            angle = pdfium_c.FPDFText_GetCharAngle(raw, index)
            if angle >= 0:
                votes[round(angle / (math.pi / 2)) % 4] += 1
    best = max(range(4), key=votes.__getitem__)
    return best if best in (1, 3) and votes[best] > sum(votes) / 2 else 0


def _turned(box: Box, turn: int, width: float, height: float) -> Box:
    """A box of a `width` x `height` page in the frame of text turned `turn` quarters
    anticlockwise (so it reads left to right), the turned page's corner at the origin as the
    page's is: a table's bounds are checked against the page's."""
    left, bottom, right, top = box
    if turn == 3:  # pdfium measures the angle clockwise: text running upwards; x' = y, y' = width - x
        return (bottom, width - right, top, width - left)
    return (height - top, left, height - bottom, right)  # turn == 1, text running downwards: x' = height - y, y' = x


def read_characters(raw) -> tuple[str, list[Box | None], list[float]]:  # type: ignore[no-untyped-def]
    """Every character of a pdfium text page (its raw handle): its text (a space where pdfium
    has none), its box around the glyph's advance (None for whitespace and generated
    characters) and its font size. The page view's glyphs (`rag_qa.pages`) are these too."""
    import pypdfium2.raw as pdfium_c

    rect = pdfium_c.FS_RECTF()
    chars: list[str] = []
    boxes: list[Box | None] = []
    sizes: list[float] = []
    for index in range(pdfium_c.FPDFText_CountChars(raw)):
        code = pdfium_c.FPDFText_GetUnicode(raw, index)
        char = " " if code == 0 else chr(code) if code < 0x110000 and not 0xD800 <= code < 0xE000 else "\ufffd"
        chars.append(char)
        if char.isspace() or pdfium_c.FPDFText_IsGenerated(raw, index) == 1:
            boxes.append(None)
            sizes.append(0.0)
            continue
        pdfium_c.FPDFText_GetLooseCharBox(raw, index, ctypes.byref(rect))  # the glyph's advance: a monospace space is one space wide
        boxes.append((rect.left, rect.bottom, rect.right, rect.top))
        sizes.append(pdfium_c.FPDFText_GetFontSize(raw, index))
    return "".join(chars), boxes, sizes


def _words(chars: str, boxes: list[Box | None], sizes: list[float]) -> list[Word]:
    """Characters grouped into words: a word ends at whitespace, at a jump in position, and
    before a footnote mark (smaller and raised: `Sn` and its `a` are two words)."""
    words: list[Word] = []
    run: list[int] = []

    def close() -> None:
        if run:
            run_boxes = [boxes[i] for i in run]
            box = (min(b[0] for b in run_boxes), min(b[1] for b in run_boxes), max(b[2] for b in run_boxes), max(b[3] for b in run_boxes))  # type: ignore[index]
            words.append(Word("".join(chars[i] for i in run), box, max(sizes[i] for i in run), tuple(run)))
            run.clear()

    for index, box in enumerate(boxes):
        if box is None:
            close()
            continue
        if run and _breaks(boxes[run[-1]], sizes[run[-1]], box, sizes[index]):  # type: ignore[arg-type]
            close()
        run.append(index)
    close()
    return words


def _breaks(before: Box, before_size: float, box: Box, size: float) -> bool:
    """Whether a glyph does not continue the word of the glyph before it."""
    unit = max(before_size, size, 1.0)
    gap = box[0] - before[2]
    if gap > 0.4 * unit or gap < -unit:
        return True
    if abs((box[1] + box[3]) / 2 - (before[1] + before[3]) / 2) > 0.6 * unit and size >= SUPERSCRIPT_SHRINK * before_size:
        return True  # another line
    return size < SUPERSCRIPT_SHRINK * before_size and box[1] > before[1] + 0.2 * before_size  # a raised, smaller mark


def _path_parts(obj, pdfium_c, hrules: list[Box], vrules: list[Box], graphics: list[Box]) -> None:  # type: ignore[no-untyped-def]
    """Sort a path's pieces into ruling lines and graphics. A stroked rectangle (a cell's frame)
    gives its four edges as rules; a thin filled one is a rule (how TeX draws them); a filled one
    is a graphic (a bar, a shaded box); curves and slanted lines are drawings."""
    count = pdfium_c.FPDFPath_CountSegments(obj.raw)
    bounds = tuple(obj.get_bounds())
    if count > MAX_PATH_SEGMENTS or count <= 0:
        graphics.append(bounds)  # type: ignore[arg-type]
        return
    fill, stroke, stroke_width = ctypes.c_int(), ctypes.c_int(), ctypes.c_float()
    pdfium_c.FPDFPath_GetDrawMode(obj.raw, ctypes.byref(fill), ctypes.byref(stroke))
    matrix = obj.get_matrix()
    pdfium_c.FPDFPageObj_GetStrokeWidth(obj.raw, ctypes.byref(stroke_width))
    if stroke.value and stroke_width.value * max(abs(matrix.a), abs(matrix.d), 1e-3) > RULE_THICKNESS:
        graphics.append(bounds)  # type: ignore[arg-type]  # a thick stroke is a bar or a band of colour, not a rule
        return
    x, y = ctypes.c_float(), ctypes.c_float()
    subpaths: list[list[tuple[float, float]]] = []
    for index in range(count):
        segment = pdfium_c.FPDFPath_GetPathSegment(obj.raw, index)
        kind = pdfium_c.FPDFPathSegment_GetType(segment)
        pdfium_c.FPDFPathSegment_GetPoint(segment, ctypes.byref(x), ctypes.byref(y))
        point = (matrix.a * x.value + matrix.c * y.value + matrix.e, matrix.b * x.value + matrix.d * y.value + matrix.f)
        if kind == pdfium_c.FPDF_SEGMENT_BEZIERTO:
            graphics.append(bounds)  # type: ignore[arg-type]
            return
        if kind == pdfium_c.FPDF_SEGMENT_MOVETO or not subpaths:
            subpaths.append([point])
        else:
            subpaths[-1].append(point)
    for points in subpaths:
        _subpath_parts(points, bool(stroke.value), hrules, vrules, graphics)


def _subpath_parts(points: list[tuple[float, float]], stroked: bool, hrules: list[Box], vrules: list[Box], graphics: list[Box]) -> None:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    box = (min(xs), min(ys), max(xs), max(ys))
    width, height = box[2] - box[0], box[3] - box[1]
    if height <= RULE_THICKNESS and width >= RULE_MIN_LENGTH:
        hrules.append(box)
    elif width <= RULE_THICKNESS and height >= RULE_MIN_LENGTH:
        vrules.append(box)
    elif len(points) < 2 or width < RULE_THICKNESS and height < RULE_THICKNESS:
        return
    elif stroked and all(abs(a[0] - b[0]) < 0.01 or abs(a[1] - b[1]) < 0.01 for a, b in zip(points, points[1:])):
        for a, b in zip(points, points[1:] + points[:1]):  # a frame: its edges are rules
            edge = (min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))
            if edge[3] - edge[1] <= RULE_THICKNESS and edge[2] - edge[0] >= RULE_MIN_LENGTH:
                hrules.append(edge)
            elif edge[2] - edge[0] <= RULE_THICKNESS and edge[3] - edge[1] >= RULE_MIN_LENGTH:
                vrules.append(edge)
    else:
        graphics.append(box)
