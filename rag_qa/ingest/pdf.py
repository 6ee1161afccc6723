"""PDF text extraction with pdfium (pypdfium2), run in a guarded worker process under a time and
memory limit (PDF parsers have had many denial-of-service bugs on crafted files; see
`rag_qa.ingest.guard`).

Why pdfium: measured on real PDFs (benchmarks/pdf_extraction.py), pypdf loses the spaces between
words in LaTeX-typeset files (4% of the Debian Reference's words glued together), pdfium keeps
them, and it is 13-20x faster. The page view's boxes come from pdfium's characters too, so the
text offsets index and the marks drawn on the page come from one reading of the page. pypdf stays
as the fallback for a file pdfium cannot open (it recovers some damaged files that pdfium refuses).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from rag_qa.ingest.guard import GuardedWorker, ParseError
from rag_qa.ingest.pdf_layout import read_layout
from rag_qa.ingest.pdf_tables import Table, find_tables
from rag_qa.ingest.pdf_tables import page_text as tables_page_text

PDF_MAGIC = b"%PDF-"
HYPHEN_MARK = "\ufffe"  # pdfium: a word hyphenated at a line end was joined here
MIN_PAGE_TEXT = 20  # a page with an image and fewer visible characters than this is a scan
MAX_ODD_SHARE = 0.3  # ...as is one whose text layer is largely unmapped glyphs (a garbage layer)
UNREADABLE_CATEGORIES = {"Co", "Cc", "Cn", "Cs"}  # private-use, control, unassigned, surrogate: glyphs without a Unicode meaning


@dataclass(frozen=True)
class PdfPages:
    """Raw text of each page, in order (page 1 first), and the pages (from 0) that are scanned
    images without a usable text layer: they need OCR."""

    pages: tuple[str, ...]
    scanned: tuple[int, ...] = ()


class PdfError(ParseError):
    """A PDF could not be read; the message is the user-facing reason."""


def extract_pages(path: str) -> PdfPages:
    """Read every page's text, in this process (no guard: see `GuardedPdfReader`)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if PDF_MAGIC not in head:
        raise PdfError(f"not a PDF (no {PDF_MAGIC.decode()} header; starts with {head[:8]!r})")
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise PdfError("encrypted PDF; a password is required to read it") from None
        return _pypdf_pages(path)  # pdfium refuses it: pypdf may recover it
    try:
        read, previous = [], None
        for index in range(len(document)):
            text, scanned, tables = _pdfium_page_text(document, index, previous)
            read.append((text, scanned))
            previous = tables[-1] if tables else None
    except pdfium.PdfiumError:
        return _pypdf_pages(path)  # a page pdfium cannot load: pypdf may read it
    finally:
        document.close()
    if not read:
        raise PdfError("PDF has no pages")
    return PdfPages(tuple(text for text, _ in read), tuple(i for i, (_, scanned) in enumerate(read) if scanned))


def _pdfium_page_text(document, index: int, previous: Table | None) -> tuple[str, bool, list[Table]]:  # type: ignore[no-untyped-def]
    """One page's text as pdfium reads it, with plain line breaks, whether it is a scan, and its
    tables (each written as rows naming their cells by column header: `pdf_tables`; `previous`,
    the last table of the page before, is the header of a table continued here). Where pdfium
    joined a word hyphenated at a line end (it marks the join with U+FFFE) the hyphen and the line
    break are put back, so the cleaner rejoins it by the same rule as any other text."""
    import pypdfium2.raw as pdfium_c

    page = document[index]
    try:
        textpage = page.get_textpage()
        text = textpage.get_text_range()
        layout = read_layout(page, textpage)
        textpage.close()
        has_image = next(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,)), None) is not None
    finally:
        page.close()
    tables = find_tables(layout, previous)
    if tables or layout.furniture:
        text = tables_page_text(layout, tables)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace(HYPHEN_MARK, "-\n")
    return text, has_image and _too_little_text(text), tables


def _too_little_text(text: str) -> bool:
    """Whether a page's text layer is missing, nearly empty or garbage (a scanner's bad OCR layer)."""
    visible = [c for c in text if not c.isspace()]
    if len(visible) < MIN_PAGE_TEXT:
        return True
    odd = sum(c == "\ufffd" or unicodedata.category(c) in UNREADABLE_CATEGORIES for c in visible)
    return odd / len(visible) > MAX_ODD_SHARE


def _pypdf_pages(path: str) -> PdfPages:
    """Every page's text read with pypdf (for files pdfium cannot open)."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise PdfError("encrypted PDF; a password is required to read it")
        pages = tuple(page.extract_text() or "" for page in reader.pages)
    except FileNotDecryptedError:
        raise PdfError("encrypted PDF; a password is required to read it") from None
    except PdfError:
        raise
    except LimitReachedError as exc:
        raise PdfError(f"hostile or oversized PDF: a parser safety limit was reached ({exc})") from None
    except PdfReadError as exc:
        raise PdfError(f"malformed or truncated PDF ({exc})") from None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, AssertionError, OSError) as exc:
        raise PdfError(f"malformed PDF ({type(exc).__name__}: {exc})") from None
    if not pages:
        raise PdfError("PDF has no pages")
    return PdfPages(pages)


class GuardedPdfReader(GuardedWorker):
    """Extracts PDFs in a guarded worker process (see `rag_qa.ingest.guard`). `extract` (a
    module-level function, so the worker can import it) is replaceable for testing the guard."""

    def __init__(self, timeout_s: float = 120.0, memory_mb: int = 2048, extract: Callable[[str], PdfPages] = extract_pages):
        super().__init__(timeout_s, memory_mb)
        self.extract_fn = extract

    def extract(self, path: str) -> PdfPages:
        """Pages of `path`; raises PdfError with the reason when the file cannot be read."""
        try:
            return self.call(self.extract_fn, path)
        except ParseError as exc:
            raise PdfError(str(exc)) from None
