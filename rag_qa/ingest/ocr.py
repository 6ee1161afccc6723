"""Reading scanned PDF pages with Tesseract OCR, and keeping the words' boxes with the index.

Why pytesseract: it is the maintained wrapper of the `tesseract` command and returns every word
with its box and its place in the page's blocks, paragraphs and lines (`image_to_data`): the
text keeps its layout and the page view can mark an answer on a scanned page as on a digital one.
OCRmyPDF would rewrite the whole file with a new text layer (and needs Ghostscript and qpdf) where
we only need the words of the pages that have no text. A page is rendered with pdfium (as the page
view renders it, so boxes match the picture) and recognised in the guarded worker, one call per
page: the page's time limit applies, and the worker's memory limit holds for its `tesseract` child.
"""

from __future__ import annotations

import bisect
import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rag_qa.ingest.guard import GuardedWorker, ParseError
from rag_qa.ingest.pdf_layout import PageLayout, Word
from rag_qa.ingest.pdf_tables import find_tables, page_text
from rag_qa.records import Document, OcrPage

if TYPE_CHECKING:
    from rag_qa.config import IngestConfig
    from rag_qa.ingest.pdf import PdfPages

RENDER_DPI = 300  # Tesseract's recommended resolution for printed text
MAX_PIXELS = 40_000_000  # a page bigger than this (a poster) is rendered smaller: bounds memory and time
RULE_POINTS = 36  # a dark run this long (a ruling line) is erased before OCR; the strokes of letters up to ~50 pt are shorter
RULE_REMNANTS = "_"  # a "word" of only these is what is left of an erased ruling line, not text
DARK = 128  # grey level below which a pixel is ink
MIN_WORD_CONFIDENCE = 40  # Tesseract's confidence (0-100) below which a "word" is most likely specks or a smudge
METADATA_PREFIX = "ocr/"
INSTALL_HINT = "install Tesseract (Debian/Ubuntu: apt-get install tesseract-ocr tesseract-ocr-eng; macOS: brew install tesseract) or index with --no-ocr"


def read_scanned_pages(
    path: str, reading: PdfPages, config: IngestConfig, guard: GuardedWorker, on_page: Callable[[int, int], None] | None = None
) -> tuple[list[str], tuple[OcrPage, ...], tuple[str, ...]]:
    """Every page's text with the scanned pages read by OCR (unless `config.ocr` is off), the
    pages read, and a warning for each reason some scanned pages could not be read (their text
    stays empty: the rest of the file is still indexed). `on_page(number, total)` is called as the
    number-th of the `total` scanned pages starts."""
    pages, read, failed = list(reading.pages), [], {}  # failed: reason -> page indices
    if reading.scanned and not config.ocr:
        failed["OCR is off (--no-ocr)"] = list(reading.scanned)
    for number, index in enumerate(reading.scanned if config.ocr else (), 1):
        if on_page is not None:
            on_page(number, len(reading.scanned))
        try:
            page = guard.call(recognise_page, path, index, config.ocr_languages, max(1.0, config.pdf_timeout_s - 5), what="OCR")
        except ParseError as exc:
            failed.setdefault(str(exc), []).append(index)
            if "not installed" in str(exc):  # the same for every page: do not try the rest
                failed[str(exc)] += reading.scanned[number:]
                break
            continue
        if page.text.strip():  # (a photo without words gives none)
            pages[index] = page.tables_text or page.text
            read.append(page)
    warnings = tuple(f"{_page_list(indices)} scanned without a text layer and not read: {reason}" for reason, indices in failed.items())
    return pages, tuple(read), warnings


def _page_list(indices: list[int]) -> str:
    numbers = [str(i + 1) for i in indices]
    return f"page {numbers[0]}" if len(numbers) == 1 else f"pages {', '.join(numbers[:10])}{' ...' if len(numbers) > 10 else ''}"


def recognise_page(path: str, index: int, languages: str, timeout_s: float) -> OcrPage:
    """Page `index` (from 0) of the PDF at `path` read by Tesseract. Runs in the guarded worker."""
    import pytesseract

    # Tesseract's OpenMP threads spin on a small machine: one Debian Reference page took 39 s with
    # its default threads and 3.7 s with one (3.3 s with two, for 40% more CPU) on 2 cores.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    started = time.perf_counter()
    image, scale = _render(path, index)
    image = without_rules(image, round(RULE_POINTS * scale))
    try:
        _check_languages(languages)
        data = pytesseract.image_to_data(image, lang=languages, output_type=pytesseract.Output.DICT, timeout=timeout_s)
    except pytesseract.TesseractNotFoundError:
        raise ParseError(f"Tesseract is not installed; {INSTALL_HINT}") from None
    except pytesseract.TesseractError as exc:
        raise ParseError(f"Tesseract failed: {str(exc.message).strip()[-300:]}") from None
    except RuntimeError as exc:  # pytesseract's timeout
        raise ParseError(f"OCR of page {index + 1} took longer than {timeout_s:g} s ({exc})") from None
    text, words = layout(data, image.width, image.height)
    tables_text = scanned_tables_text(text, words, image.width / scale, image.height / scale)
    return OcrPage(index + 1, text, words, time.perf_counter() - started, tables_text)


def scanned_tables_text(text: str, words: Sequence[tuple[int, int, float, float, float, float]], width: float, height: float) -> str:
    """`text` of a scanned page with each table found among its words (`pdf_tables.find_tables`,
    from the words' boxes: a scan has no ruling lines to read, so tables are found as unruled
    ones) written as rows naming every cell by its column's header, as on a digital page; "" when
    the page holds no table. `width` and `height`: the page's size in points."""
    page = scanned_layout(text, words, width, height)
    tables = find_tables(page)
    return page_text(page, tables) if tables else ""


def scanned_layout(text: str, words: Sequence[tuple[int, int, float, float, float, float]], width: float, height: float) -> PageLayout:
    """Tesseract's words as a page layout in points (y upwards, as PDF page space), each word's
    size the height of the tallest word on its line (a font size's worth: ascenders to descenders)."""
    breaks = [i for i, char in enumerate(text) if char == "\n"]
    line_of = [bisect.bisect(breaks, start) for start, *_ in words]
    tallest: dict[int, float] = {}
    for line, (_, _, _, top, _, bottom) in zip(line_of, words):
        tallest[line] = max(tallest.get(line, 0.0), (bottom - top) * height)
    placed = tuple(
        Word(text[start:end], (left * width, (1 - bottom) * height, right * width, (1 - top) * height), tallest[line], tuple(range(start, end)))
        for line, (start, end, left, top, right, bottom) in zip(line_of, words)
    )
    return PageLayout(text, placed, (), (), (), width, height)


def without_rules(image, length: int):  # type: ignore[no-untyped-def]
    """The picture with its ruling lines (dark runs of `length` pixels or more, across or down)
    painted white: Tesseract takes a ruled table's cells for pictures and reads none of their
    words. Letters' strokes are shorter; an underline goes with the rules."""
    import numpy as np
    from PIL import Image

    dark = np.asarray(image) < DARK
    rules = _long_runs(dark, length) | _long_runs(dark.T, length).T
    if not rules.any():
        return image
    pixels = np.array(image)
    pixels[rules] = 255
    return Image.fromarray(pixels)


def _long_runs(dark, length: int):  # type: ignore[no-untyped-def]
    """Which pixels lie in a run of `length` or more dark pixels along a row."""
    import numpy as np

    rows, columns = dark.shape
    if columns < length:
        return np.zeros_like(dark)
    counts = np.zeros((rows, columns + 1), dtype=np.int32)
    np.cumsum(dark, axis=1, out=counts[:, 1:])
    full = (counts[:, length:] - counts[:, :-length]) == length  # a run of `length` starts at each True
    starts = np.zeros((rows, columns + 1), dtype=np.int32)
    np.cumsum(full, axis=1, out=starts[:, 1 : full.shape[1] + 1])
    starts[:, full.shape[1] + 1 :] = starts[:, full.shape[1] : full.shape[1] + 1]
    ends = np.arange(columns)
    low = np.maximum(ends - length + 1, 0)
    return (starts[:, ends + 1] - starts[:, low]) > 0


def _render(path: str, index: int):  # type: ignore[no-untyped-def]
    """The page as a greyscale picture at RENDER_DPI (less for a huge page), and its pixels per point."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(path)
    try:
        page = document[index]
        scale = RENDER_DPI / 72
        pixels = page.get_width() * page.get_height() * scale * scale
        if pixels > MAX_PIXELS:
            scale *= (MAX_PIXELS / pixels) ** 0.5
        return page.render(scale=scale, grayscale=True).to_pil(), scale
    finally:
        document.close()


@functools.cache
def _installed_languages() -> frozenset[str]:
    import pytesseract

    return frozenset(pytesseract.get_languages())


def _check_languages(languages: str) -> None:
    """Tesseract leaves out a language it lacks with only a warning: refuse instead, naming the package."""
    missing = [code for code in languages.split("+") if code not in _installed_languages()]
    if missing:
        packs = " ".join(f"tesseract-ocr-{code}" for code in missing)
        raise ParseError(f"OCR language '{languages}' is not installed (Debian/Ubuntu: apt-get install {packs}); see `tesseract --list-langs`")


def layout(data: dict[str, list[Any]], width: int, height: int) -> tuple[str, tuple[tuple[int, int, float, float, float, float], ...]]:
    """The page's text from Tesseract's words (spaces between words, a line break between lines, a
    blank line between paragraphs) and each word's [start, end) in it with its box as fractions of
    the picture (left, top, right, bottom)."""
    text, words, previous = "", [], None
    for i, word in enumerate(data["text"]):
        word = word.strip()
        if not word or _is_noise(float(data["conf"][i])) or not word.strip(RULE_REMNANTS):
            continue
        line = (data["page_num"][i], data["block_num"][i], data["par_num"][i], data["line_num"][i])
        if previous is not None:
            text += " " if line == previous else "\n" if line[:3] == previous[:3] else "\n\n"
        previous = line
        left, top = data["left"][i], data["top"][i]
        box = (left / width, top / height, (left + data["width"][i]) / width, (top + data["height"][i]) / height)
        words.append((len(text), len(text) + len(word), *(round(v, 5) for v in box)))
        text += word
    return text, tuple(words)  # type: ignore[return-value]


def _is_noise(confidence: float) -> bool:
    """Specks read as letters: on a photographed test page they scored 0-36, the page's words 62-97."""
    return confidence < MIN_WORD_CONFIDENCE


def metadata_name(content_hash: str, page: int) -> str:
    """Where the recognised words of one page of a file are kept with the index (per content and
    page: a changed file gets new ones, and the page view reads one page's words, not a book's)."""
    return f"{METADATA_PREFIX}{content_hash}-{page}"


def keep_recognised_words(store: Any, documents: list[Document]) -> None:
    """Save the OCR'd pages' words with the index before their documents are stored, so the page
    view can mark answers on scanned pages."""
    for document in documents:
        for page in document.ocr_pages:
            store.write_metadata(metadata_name(document.content_hash, page.page), page.to_dict())


def recognised_page(store: Any, content_hash: str, page: int) -> OcrPage | None:
    """The words kept for page `page` of the file with `content_hash`, or None (a digital page)."""
    saved = store.read_metadata(metadata_name(content_hash, page))
    return OcrPage.from_dict(saved) if saved is not None else None
