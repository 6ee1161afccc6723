"""PDF text extraction with pypdf, run in a guarded worker process under a time and memory limit
(pypdf has had many denial-of-service bugs on crafted files; see `rag_qa.ingest.guard`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rag_qa.ingest.guard import GuardedWorker, ParseError

PDF_MAGIC = b"%PDF-"


@dataclass(frozen=True)
class PdfPages:
    """Raw text of each page, in order (page 1 first)."""

    pages: tuple[str, ...]


class PdfError(ParseError):
    """A PDF could not be read; the message is the user-facing reason."""


def extract_pages(path: str) -> PdfPages:
    """Read every page's text with pypdf, in this process (no guard: see `GuardedPdfReader`)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if PDF_MAGIC not in head:
        raise PdfError(f"not a PDF (no {PDF_MAGIC.decode()} header; starts with {head[:8]!r})")

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
