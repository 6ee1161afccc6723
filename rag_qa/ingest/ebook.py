"""E-books (.epub) read with EbookLib (the maintained EPUB reader) in the guarded worker. A chapter
is a page: answers and `show` name the chapter's number in reading order.

The chapters are the book's spine documents in order (the reading order the publisher set); each
is XHTML, read with the HTML loader (headings and paragraphs kept, styles and scripts left out).
The navigation document (table of contents) is left out: its lines would repeat every heading.
"""

from __future__ import annotations

import zipfile

from rag_qa.ingest.guard import ParseError
from rag_qa.ingest.html import html_to_text
from rag_qa.ingest.packages import EPUB, check_package
from rag_qa.ingest.text import decode_text


class EbookError(ParseError):
    """An e-book could not be read; the message is the user-facing reason."""


def extract_epub(path: str) -> list[str]:
    """One text per chapter, in spine order."""
    check_package(path, EPUB, EbookError)
    import ebooklib
    from ebooklib import epub
    from lxml.etree import XMLSyntaxError

    try:
        book = epub.read_epub(path, options={"ignore_ncx": True})
        chapters = []
        for idref, _linear in book.spine:
            item = book.get_item_with_id(idref)
            if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT or isinstance(item, epub.EpubNav) or "nav" in getattr(item, "properties", []):
                continue
            chapters.append(html_to_text(decode_text(item.get_content()), with_title=False))
        return chapters
    except XMLSyntaxError as exc:
        raise EbookError(f"malformed EPUB e-book (broken XML: {exc})") from None
    except (epub.EpubException, KeyError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
        raise EbookError(f"malformed EPUB e-book ({type(exc).__name__}: {exc})") from None
