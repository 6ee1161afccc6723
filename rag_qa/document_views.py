"""What a reader sees of one indexed document, for `RagQA` (a mixin): its text, its PDF pages as
images, and where an answer's characters are on them. Each method takes the caller's groups and
asks `RagQA.readable_source` first, the one place that decides who reads a document."""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence

from rag_qa.errors import NotFoundError
from rag_qa.ingest.loaders import PAGE_SEPARATOR
from rag_qa.ingest.mail import file_of, is_attachment
from rag_qa.ingest.ocr import recognised_page
from rag_qa.pages import PdfPageViewer
from rag_qa.records import Answer, PageBox, SourceText
from rag_qa.store import Store


class DocumentViews:
    """`show`, `page_image`, `boxes`, `answer_boxes` and `content_hash`, for `RagQA`."""

    store: Store
    pages: PdfPageViewer

    def readable_source(self, source: str | os.PathLike[str], groups: Sequence[str] | None = None) -> str:
        raise NotImplementedError  # RagQA's

    def readable_sources(self, groups: Sequence[str] | None) -> list[str] | None:
        raise NotImplementedError  # RagQA's

    def show(self, source: str | os.PathLike[str], page: int | None = None, groups: Sequence[str] | None = None) -> SourceText:
        """The text that answer offsets of `source` index (the decoded file for text formats, the
        extracted text for HTML and PDF): `show(a.source).text[a.start:a.end] == a.text`. With
        `page`, one page of a PDF, with where it starts and ends in that text."""
        name = self.readable_source(source, groups)
        text = self.store.document_text(name)
        if text is None:
            raise NotFoundError(f"{name} was indexed before rag-qa kept document text; index it again to show it")
        starts = self.store.page_starts(name)
        if page is None:
            return SourceText(name, text, 0, len(text), None, len(starts))
        if not 1 <= page <= len(starts):
            pages = f"pages 1 to {len(starts)}" if starts else "no pages (it is not a PDF)"
            raise NotFoundError(f"{name} has {pages}; page {page} does not exist")
        end = starts[page] - len(PAGE_SEPARATOR) if page < len(starts) else len(text)
        return SourceText(name, text[starts[page - 1] : end], starts[page - 1], end, page, len(starts))

    def page_image(self, source: str | os.PathLike[str], page: int, width: int = 1000, groups: Sequence[str] | None = None) -> bytes:
        """Page `page` (from 1) of an indexed PDF as a PNG `width` pixels wide (100 to 2400).
        Raises NotFoundError for a page that does not exist or a file no longer on disk (unless
        the index keeps its original), and
        RagQAError for a file that changed since it was indexed."""
        shown = self.show(source, page, groups)
        if is_attachment(shown.source):
            raise NotFoundError(f"{shown.source} is an attachment of {file_of(shown.source)}: its pages are not shown (open it from the mail)")
        return self.pages.render(shown.source, self._indexed_hash(shown.source), page, width, self.store.original)

    def boxes(self, source: str | os.PathLike[str], start: int, end: int, groups: Sequence[str] | None = None) -> list[PageBox]:
        """Where characters [start, end) of an indexed PDF's text (`show`) are on its pages: one
        rectangle per line, as fractions of the page (draw them on `page_image`); [] for a
        document that is not a PDF."""
        name = self.readable_source(source, groups)
        starts = self.store.page_starts(name)
        if not starts or end <= start or is_attachment(name):  # (not a file on disk)
            return []
        found: list[PageBox] = []
        for page in range(bisect.bisect_right(starts, start), bisect.bisect_right(starts, end - 1) + 1):
            shown = self.show(name, page)
            first, last = max(start, shown.start) - shown.start, min(end, shown.end) - shown.start
            if first < last:
                content_hash = self._indexed_hash(name)
                scanned = recognised_page(self.store, content_hash, page)
                found += self.pages.boxes(name, content_hash, page, shown.text, first, last, scanned, self.store.original)
        return found

    def answer_boxes(self, answer: Answer) -> list[PageBox]:
        """The boxes of an answer on its PDF's pages (see `boxes`); [] when it is not from a PDF."""
        return self.boxes(answer.source, answer.start, answer.end) if answer.source and answer.page else []

    def content_hash(self, source: str | os.PathLike[str], groups: Sequence[str] | None = None) -> str:
        """The content hash a readable document was indexed with (a page image's cache tag)."""
        return self._indexed_hash(self.readable_source(source, groups))

    def _indexed_hash(self, name: str) -> str:
        content_hash = self.store.file_hash(name)
        if content_hash is None:
            raise NotFoundError(f"{name} is not in the index (see `rag-qa info --files`)")
        return content_hash

    def kept_originals(self, groups: Sequence[str] | None = None) -> set[str]:
        """The readable documents whose original files the index keeps (the service's uploads on
        PostgreSQL: `index(..., keep_originals=True)`)."""
        kept, readable = self.store.original_sources(), self.readable_sources(groups)
        return kept if readable is None else kept & set(readable)

    def answers(self) -> bool:
        """Whether the index answers now (a readiness probe: one indexed lookup; raises StoreUnavailable)."""
        self.store.file_hash("")
        return True

