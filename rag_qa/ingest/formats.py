"""The file types rag-qa reads, in one place: the folder walk's default globs, the loaders and the
upload accept list all come from here (no heavy imports: the settings module reads it)."""

from __future__ import annotations

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
DOCX_SUFFIXES = frozenset({".docx"})
ODT_SUFFIXES = frozenset({".odt"})
SLIDE_SUFFIXES = frozenset({".pptx"})
WORKBOOK_SUFFIXES = frozenset({".xlsx"})
CSV_SUFFIXES = frozenset({".csv"})
EPUB_SUFFIXES = frozenset({".epub"})
MAIL_SUFFIXES = frozenset({".eml", ".msg"})
SUPPORTED_SUFFIXES = (
    TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES | ODT_SUFFIXES | SLIDE_SUFFIXES | WORKBOOK_SUFFIXES | CSV_SUFFIXES | EPUB_SUFFIXES
    | MAIL_SUFFIXES
)
DEFAULT_INCLUDE = tuple(f"*{suffix}" for suffix in sorted(SUPPORTED_SUFFIXES))
