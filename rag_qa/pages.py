"""PDF pages as pictures, and answers as boxes on them: evidence a user can see.

Rendering and character boxes come from pdfium (pypdfium2): it is the PDF engine of Chromium, is
maintained, and reports a box for every character it extracts. We render on the server rather
than shipping pdf.js to the browser so the web page stays small and works offline, and so the
Python API and notebooks get the very same boxes.

A scanned page has no glyphs: its words and their boxes, as OCR read them at ingestion, are
kept with the index and stand in for them (`ocr_glyphs`).

Answer offsets index the text pdfium extracted at ingestion (after cleaning: whitespace tidied,
hyphenated line ends rejoined, running headers removed), so the indexed characters and pdfium's
glyphs are paired on their non-space characters, one for one in the usual case; the alignment
below also covers PDFs indexed by earlier versions (pypdf's text) or read by the pypdf fallback.
pdfium runs in a guarded worker (time and memory limit), as at ingestion.
"""

from __future__ import annotations

import ctypes
import difflib
import functools
import io
import os
import queue
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from rag_qa.errors import NotFoundError, RagQAError
from rag_qa.ingest.guard import GuardedWorker, ParseError
from rag_qa.ingest.loaders import file_hash
from rag_qa.ingest.pdf_layout import read_characters
from rag_qa.records import OcrPage, PageBox
from rag_qa.spool import SpooledOriginals

MIN_WIDTH, MAX_WIDTH = 100, 2400  # pixels: bounds a request's memory and time
_DEVICE = 100_000_000  # the display map is measured on a device this many units across (an int32 in pdfium)


Box = tuple[float, float, float, float]
Stored = Callable[[str], "bytes | None"]  # a stored file's original bytes, None when the index keeps none
NARROW, NARROW_SHARE = set(".,;:!'|iIljft()"), 0.45  # characters about half as wide as others, in most typefaces


@dataclass(frozen=True)
class PageGlyphs:
    """The characters pdfium extracts from one page, each with its box in PDF page space (left,
    bottom, right, top; None for whitespace and generated characters), and the affine map
    (a, b, c, d, e, f) from page space to fractions of the displayed page: x' = a·x + c·y + e,
    y' = b·x + d·y + f (it carries the page's rotation and crop box)."""

    chars: str
    boxes: tuple[Box | None, ...]
    to_display: tuple[float, float, float, float, float, float]

    def displayed(self, box: Box) -> Box:
        """A page-space box as (left, top, right, bottom) fractions of the displayed page."""
        a, b, c, d, e, f = self.to_display
        xs, ys = zip(*[(a * x + c * y + e, b * x + d * y + f) for x in (box[0], box[2]) for y in (box[1], box[3])])
        return min(xs), min(ys), max(xs), max(ys)


def _open_page(path: str, page: int):  # type: ignore[no-untyped-def]
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    if not 1 <= page <= len(pdf):
        pdf.close()
        raise ParseError(f"{path} has {len(pdf)} pages; page {page} does not exist")
    return pdf, pdf[page - 1]


def render_page(path: str, page: int, width: int) -> bytes:
    """Page `page` (from 1) of the PDF as a PNG `width` pixels wide. Runs in the guarded worker."""
    pdf, pdf_page = _open_page(path, page)
    try:
        image = pdf_page.render(scale=width / pdf_page.get_width()).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        pdf.close()


def page_glyphs(path: str, page: int) -> PageGlyphs:
    """Every character pdfium extracts from page `page`, with its box. Runs in the guarded worker."""
    pdf, pdf_page = _open_page(path, page)
    try:
        text_page = pdf_page.get_textpage()
        chars, boxes, _ = read_characters(text_page.raw)
        return PageGlyphs(chars, tuple(boxes), _display_map(pdf_page))
    finally:
        pdf.close()


def _display_map(pdf_page) -> tuple[float, float, float, float, float, float]:  # type: ignore[no-untyped-def]
    """pdfium's page-to-display transform (rotation, crop box), measured at three points."""
    import pypdfium2.raw as pdfium_c

    x, y = ctypes.c_int(), ctypes.c_int()

    def display(px: float, py: float) -> tuple[float, float]:
        pdfium_c.FPDF_PageToDevice(pdf_page.raw, 0, 0, _DEVICE, _DEVICE, 0, px, py, ctypes.byref(x), ctypes.byref(y))
        return x.value / _DEVICE, y.value / _DEVICE

    size = min(pdf_page.get_width(), pdf_page.get_height())  # probes inside the page: no int overflow
    (e, f), (x1, y1), (x2, y2) = display(0, 0), display(size, 0), display(0, size)
    return (x1 - e) / size, (y1 - f) / size, (x2 - e) / size, (y2 - f) / size, e, f


def _comparable(char: str) -> str:
    return unicodedata.normalize("NFKC", char).casefold()


def glyph_of_each_char(page_text: str, glyphs: PageGlyphs) -> list[int | None]:
    """For each character of `page_text`, the index of the pdfium glyph it is (None for
    whitespace and for characters pdfium does not have, such as a hyphen removed at a line end).

    When the non-space characters agree one for one (the usual case) they are paired in linear
    time. Otherwise they are aligned in order first (difflib, quadratic on repetitive text: it runs
    in the guarded worker, under its time limit); then each stretch left unaligned (pdfium may
    order the lines of a rotated or multi-column page differently) is looked for among the glyphs
    still free, in blocks of at least two characters."""
    ours = [i for i, c in enumerate(page_text) if not c.isspace()]
    theirs = [i for i, b in enumerate(glyphs.boxes) if b is not None]
    a = [_comparable(page_text[i]) for i in ours]
    b = [_comparable(glyphs.chars[i]) for i in theirs]
    glyph: list[int | None] = [None] * len(page_text)
    if a == b:  # the usual case, in linear time: the two parsers saw the same characters in the same order
        for x, y in zip(ours, theirs):
            glyph[x] = y
        return glyph
    matched: dict[int, int] = {}  # position in `a` -> position in `b`

    def align(run: list[int], min_block: int) -> None:
        free = sorted(set(range(len(b))) - set(matched.values()))
        matcher = difflib.SequenceMatcher(None, [a[i] for i in run], [b[j] for j in free], autojunk=False)
        for x, y, size in matcher.get_matching_blocks():
            if size >= min_block:
                matched.update((run[x + k], free[y + k]) for k in range(size))

    align(list(range(len(a))), 1)
    for run in sorted(_unmatched_runs(len(a), matched), key=len, reverse=True):
        if len(run) >= 2:
            align(run, 2)
    for x, y in matched.items():
        glyph[ours[x]] = theirs[y]
    return glyph


def aligned_glyphs(path: str, page: int, page_text: str) -> tuple[PageGlyphs, list[int | None]]:
    """A page's glyphs and the glyph of each character of `page_text`. Runs in the guarded worker."""
    glyphs = page_glyphs(path, page)
    return glyphs, glyph_of_each_char(page_text, glyphs)


def ocr_glyphs(page: OcrPage) -> PageGlyphs:
    """A scanned page's recognised words as glyphs: each word's box shared among its characters
    (punctuation and thin letters narrower), in a page space of page fractions with y upwards (as
    PDF page space), so lines merge and boxes display as on a digital page."""
    boxes: list[Box | None] = [None] * len(page.text)
    for start, end, left, top, right, bottom in page.words:
        widths = [NARROW_SHARE if c in NARROW else 1.0 for c in page.text[start:end]]
        unit, x = (right - left) / sum(widths), left
        for k, width in enumerate(widths):
            boxes[start + k] = (x, 1 - bottom, x + width * unit, 1 - top)
            x += width * unit
    return PageGlyphs(page.text, tuple(boxes), (1.0, 0.0, 0.0, -1.0, 0.0, 1.0))


def aligned_ocr_glyphs(page: OcrPage, page_text: str) -> tuple[PageGlyphs, list[int | None]]:
    """As `aligned_glyphs`, for a page read by OCR (its words kept with the index). Runs in the guarded worker."""
    glyphs = ocr_glyphs(page)
    return glyphs, glyph_of_each_char(page_text, glyphs)


def _unmatched_runs(size: int, matched: dict[int, int]) -> list[list[int]]:
    runs: list[list[int]] = [[]]
    for position in range(size):
        if position in matched:
            runs.append([])
        else:
            runs[-1].append(position)
    return [run for run in runs if run]


def line_boxes(boxes: list[Box]) -> list[Box]:
    """Page-space glyph boxes (left, bottom, right, top) in reading order merged into one
    rectangle per line: a line ends where the next glyph does not continue rightwards at the same
    height. (Merged before rotation, so a rotated page's lines merge too.)"""
    lines: list[list[float]] = []
    for left, bottom, right, top in boxes:
        if lines:
            line = lines[-1]
            overlap = min(top, line[3]) - max(bottom, line[1])
            if overlap > 0.5 * min(top - bottom, line[3] - line[1]) and left >= line[0] - 0.1:
                line[:] = [line[0], min(bottom, line[1]), max(right, line[2]), max(top, line[3])]
                continue
        lines.append([left, bottom, right, top])
    return [(a, b, c, d) for a, b, c, d in lines]


class PdfPageViewer:
    """Renders indexed PDFs' pages and finds the boxes of character ranges on them, after checking
    that the file on disk is still the one that was indexed. Thread-safe: pdfium runs in a pool of
    guarded workers (time and memory limits), requests for one document take turns, and different
    documents are served side by side, so one slow or hostile PDF cannot stall every page view.
    Rendered pages are cached up to `cache_mb`. close() stops the workers."""

    def __init__(self, timeout_s: float = 30.0, memory_mb: int = 1024, workers: int = 2, cache_mb: float = 64.0):
        self._workers: queue.Queue[GuardedWorker] = queue.Queue()
        self._all = [GuardedWorker(timeout_s, memory_mb) for _ in range(workers)]  # each starts on first use
        for worker in self._all:
            self._workers.put(worker)
        self._guard = threading.Lock()
        self._document_locks: dict[str, threading.Lock] = {}
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._images = ByteBoundedCache(int(cache_mb * 1_000_000))
        self._originals = SpooledOriginals()

    def close(self) -> None:
        for worker in self._all:
            worker.close()
        self._originals.close()

    def _document_lock(self, source: str) -> threading.Lock:
        with self._guard:
            return self._document_locks.setdefault(source, threading.Lock())

    def render(self, source: str, content_hash: str, page: int, width: int, stored: Stored | None = None) -> bytes:
        """Page `page` as a PNG `width` pixels wide. `stored` gives the file's bytes when the index
        keeps its original (an upload on PostgreSQL): then no copy on this machine is needed."""
        if not MIN_WIDTH <= width <= MAX_WIDTH:
            raise RagQAError(f"width must be between {MIN_WIDTH} and {MAX_WIDTH} pixels, got {width}")
        path, key = self._file(source, content_hash, stored), (source, content_hash, page, width)
        with self._document_lock(source):
            png = self._images.get(key)
            if png is None:
                png = self._call(source, render_page, path, page, width)
                self._images.put(key, png)
        return png

    def boxes(
        self, source: str, content_hash: str, page: int, page_text: str, start: int, end: int, scanned: OcrPage | None = None,
        stored: Stored | None = None,
    ) -> list[PageBox]:  # fmt: skip
        """Rectangles (one per line) covering `page_text[start:end]`, the stored text of page
        `page`; `scanned` is the page's OCR reading when it was a scan; `stored` as for `render`."""
        with self._document_lock(source):
            path = self._file(source, content_hash, stored)
            glyphs, glyph = self._aligned(source, content_hash, path, page, page_text, scanned)
        found = sorted({g for g in glyph[start:end] if g is not None})
        lines = line_boxes([glyphs.boxes[g] for g in found])  # type: ignore[misc]
        return [PageBox(page, *glyphs.displayed(line)) for line in lines]

    @functools.lru_cache(maxsize=64)  # the viewer lives as long as the index it serves
    def _aligned(self, source: str, content_hash: str, path: str, page: int, page_text: str, scanned: OcrPage | None) -> tuple[PageGlyphs, list[int | None]]:  # (the hash: a key of the cache)
        if scanned is not None:
            return self._call(source, aligned_ocr_glyphs, scanned, page_text)
        return self._call(source, aligned_glyphs, path, page, page_text)

    def _file(self, source: str, content_hash: str, stored: Stored | None) -> str:
        """Where to read `source` as it was indexed: the index's copy of its original (written
        once to this viewer's spool folder, named by its content), else the file on disk."""
        spooled = self._originals.path(source, content_hash)
        if spooled is not None:
            return spooled
        original = stored(source) if stored is not None else None
        if original is not None:
            return self._originals.put(source, content_hash, original)
        self._check_file(source, content_hash)
        return source

    def _check_file(self, source: str, content_hash: str) -> None:
        """Raise unless `source` is on disk with the content that was indexed."""
        try:
            status = os.stat(source)
        except OSError:
            raise NotFoundError(f"{source} is indexed but is no longer on disk here, so its pages cannot be shown") from None
        key = (source, status.st_size, status.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = file_hash(source)
        if self._hashes[key] != content_hash:
            raise RagQAError(f"{source} has changed since it was indexed; index it again to show its pages")

    def _call(self, source: str, function, *args):  # type: ignore[no-untyped-def]
        """`function(*args)` in a free guarded worker; a failure names `source`."""
        worker = self._workers.get()  # waits while every worker is busy
        try:
            return worker.call(function, *args)
        except ParseError as exc:
            raise RagQAError(f"{source}: {exc}") from None
        finally:
            self._workers.put(worker)


class ByteBoundedCache:
    """A least-recently-used cache holding at most `budget` bytes of values. Thread-safe."""

    def __init__(self, budget: int):
        self.budget, self.size = budget, 0
        self._items: OrderedDict[object, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: object, value: bytes) -> None:
        if len(value) > self.budget:
            return  # larger than the whole cache: serve it, keep nothing
        with self._lock:
            if key in self._items:
                self.size -= len(self._items.pop(key))
            self._items[key] = value
            self.size += len(value)
            while self.size > self.budget:
                self.size -= len(self._items.popitem(last=False)[1])
