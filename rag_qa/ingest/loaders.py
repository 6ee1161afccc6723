"""Turning files into `Document`s: find them, read them by type, clean the text.

Every failure is a `LoadError` naming the file and a reason a user can act on.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rag_qa.config import IngestConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.html import declared_charset, html_to_text
from rag_qa.ingest.docx import extract_docx
from rag_qa.ingest.ebook import extract_epub
from rag_qa.ingest.formats import (
    CSV_SUFFIXES, DOCX_SUFFIXES, EPUB_SUFFIXES, HTML_SUFFIXES, MAIL_SUFFIXES, ODT_SUFFIXES, PDF_SUFFIXES, SLIDE_SUFFIXES, SUPPORTED_SUFFIXES, TEXT_SUFFIXES, WORKBOOK_SUFFIXES,
)  # fmt: skip
from rag_qa.ingest.guard import ParseError
from rag_qa.ingest.mail import ATTACHMENT_MARK, attachment_source, read_mail, read_outlook_msg
from rag_qa.ingest.ocr import read_scanned_pages
from rag_qa.ingest.odt import extract_odt
from rag_qa.ingest.pdf import GuardedPdfReader
from rag_qa.ingest.pdf_tables import ROW_BREAK
from rag_qa.ingest.sheets import csv_text, extract_xlsx
from rag_qa.naming import within
from rag_qa.ingest.slides import extract_pptx
from rag_qa.ingest.text import DecodeError, clean_text, decode_text, kept_hyphens, strip_running_lines
from rag_qa.records import Document, OcrPage
from rag_qa.store.faiss_store import DATABASE, MANIFEST

PAGE_SEPARATOR = "\n\n"
# Where the text of a file depends on the extractor, its name is part of the file's stored hash, so
# a file an earlier extractor read (pypdf, for PDFs indexed before pdfium) is read again on re-index.
# A new tag when a format's extraction changes: files indexed before are read again. "table-rows":
# tables as lines naming each cell by its header (ingest/tables.py; HTML also in e-books and mail).
EXTRACTOR_TAGS = {".pdf": "pdfium-layout", **dict.fromkeys(sorted(HTML_SUFFIXES | EPUB_SUFFIXES | MAIL_SUFFIXES | DOCX_SUFFIXES | ODT_SUFFIXES | SLIDE_SUFFIXES), "table-rows")}
UNSUPPORTED = "unsupported format"
OcrProgress = Callable[[int, int], None]  # (scanned page starting, scanned pages) of one file's OCR
Scanned = tuple[tuple[OcrPage, ...], tuple[str, ...]]  # the pages read by OCR, warnings about those not read


class UnreadableFolder(LoadError):
    """A folder a walk could not list: what is under it is unknown, so a sync removes none of it."""


def source_name(path: str | os.PathLike[str]) -> str:
    """The canonical name a file is stored under: its absolute, resolved path."""
    return str(Path(path).resolve())


def discover(paths: list[str], config: IngestConfig) -> tuple[list[str], list[LoadError]]:
    """Files to ingest (sorted, de-duplicated) and the paths that cannot be ingested at all.

    Directories are walked recursively and filtered by the include/exclude globs (matched against
    both the file name and the path relative to the directory); hidden files and folders (names
    starting with a dot) and rag-qa index folders are not walked. A file in a walk whose type no
    loader reads, and that no exclude glob names, is reported as an unsupported format, and a
    folder the walk cannot list as an `UnreadableFolder`, so nothing is left out silently.
    Files named explicitly must have a supported type but need not match the globs.
    """
    found: dict[str, None] = {}
    problems: list[LoadError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path, problems):
                relative = file.relative_to(path).as_posix()
                if _matches(file.name, relative, config.exclude):
                    continue
                if _matches(file.name, relative, config.include):
                    found.setdefault(source_name(file))
                elif file.suffix.lower() not in SUPPORTED_SUFFIXES:
                    problems.append(LoadError(str(file), unsupported_format(file.suffix)))
        elif path.is_file():
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                found.setdefault(source_name(path))
            else:
                problems.append(LoadError(str(path), unsupported_format(path.suffix)))
        else:
            problems.append(LoadError(str(path), "no such file or directory"))
    return list(found), problems


def _walk(folder: Path, problems: list[LoadError]) -> list[Path]:
    """Every file under `folder`, sorted, leaving out hidden entries and index folders (an index
    kept inside the folder it indexes must not index itself). A folder that cannot be listed (no
    permission, a failing disk or share) is added to `problems`: os.walk alone skips it silently,
    and a sync would take its files for deleted."""

    def unreadable_folder(where: str | os.PathLike[str], error: OSError) -> None:
        problems.append(UnreadableFolder(source_name(where), f"cannot read folder ({error.strerror or error})"))

    files = []
    root = source_name(folder)
    for directory, subdirectories, names in os.walk(folder, onerror=lambda error: unreadable_folder(error.filename or folder, error)):
        try:
            subdirectories[:] = [d for d in subdirectories if not d.startswith(".") and not is_index_folder(Path(directory, d))]
            found = [Path(directory, n) for n in names if not n.startswith(".") and Path(directory, n).is_file()]
        except OSError as error:  # listed but not searchable (read without execute permission)
            subdirectories[:] = []
            unreadable_folder(directory, error)
            continue
        for path in found:
            if within(source_name(path), [root]):
                files.append(path)
            else:  # a link out of the folder: it would index (and give this run's groups to) a file kept elsewhere
                problems.append(LoadError(str(path), f"a link to {source_name(path)}, outside {root}: not indexed (index that file where it is)"))
    return sorted(files)


def is_index_folder(folder: Path) -> bool:
    """Whether `folder` holds a rag-qa index (its manifest and database)."""
    return (folder / MANIFEST).exists() and (folder / DATABASE).exists()


def check_size(path: str, size: int, config: IngestConfig) -> None:
    """Raise LoadError for a file over `config.max_file_mb`."""
    if size > config.max_file_mb * 1024 * 1024:
        raise LoadError(path, f"too large ({size / 2**20:.1f} MB > limit {config.max_file_mb:g} MB)")


def unreadable(path: str, exc: OSError) -> LoadError:
    """The report of a file the operating system would not let us read."""
    return LoadError(path, f"cannot read file ({exc.strerror or exc})")


def unsupported_format(suffix: str) -> str:
    return f"{UNSUPPORTED} {suffix.lower() or '(no extension)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"


def _matches(name: str, relative: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in patterns)


def file_hash(path: str) -> str:
    """SHA-256 of the file's bytes (tagged with the extractor where one decides the text, see
    EXTRACTOR_TAGS): unchanged files are recognised and skipped by this."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() + _extractor_tag(path)


def bytes_hash(path: str, data: bytes) -> str:
    """`file_hash` of `path` computed from its bytes already read (the bytes hashed are the bytes parsed)."""
    return hashlib.sha256(data).hexdigest() + _extractor_tag(path)


def _extractor_tag(path: str) -> str:
    tag = EXTRACTOR_TAGS.get(Path(path).suffix.lower())
    return f"+{tag}" if tag else ""


def load_document(
    path: str, config: IngestConfig, guard: GuardedPdfReader, content_hash: str | None = None, on_ocr_page: OcrProgress | None = None,
    attachments: bool = True,
) -> Document:  # fmt: skip
    """Read one file. Raises LoadError with the reason when it cannot be used.

    The document's text is what answer offsets index: for text files the decoded file exactly;
    for the other formats the extracted text (visible HTML text; paragraphs, headings and tables of a
    Word document; PDF pages joined by a blank line, running headers and footers removed; slides
    and sheets as pages; e-book chapters as pages; CSV rows as lines; whitespace tidied). Scanned
    PDF pages are read by OCR (`on_ocr_page(number, total)` follows it). A mail's attachments of
    supported types are read too (unless not `attachments`: an attached mail's own are not).
    `content_hash` may be passed when the caller has already hashed the file."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            raise LoadError(path, "empty file")
        check_size(path, size, config)
        suffix = Path(path).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise LoadError(path, unsupported_format(suffix))
        scanned: Scanned = ((), ())
        mail = None
        if suffix in CSV_SUFFIXES | HTML_SUFFIXES | TEXT_SUFFIXES:  # read once here: the bytes hashed are the bytes parsed
            data = Path(path).read_bytes()
            content_hash = bytes_hash(path, data)
            text, page_starts = _text_of_bytes(path, suffix, data, guard), ()
        else:  # parsed by path in the guarded worker; it must still be the file hashed
            content_hash = content_hash if content_hash is not None else file_hash(path)
            if suffix in PDF_SUFFIXES:
                text, page_starts, scanned = _pdf_text(path, config, guard, on_ocr_page)
            elif suffix in MAIL_SUFFIXES:
                read, what = MAIL_READERS[suffix]
                mail = guard.call(read, path, what=what)
                text, page_starts = clean_text(mail.text), ()
            else:
                text, page_starts = _parsed_by_path(path, suffix, guard)
            _check_unchanged(path, content_hash)
    except DecodeError as exc:
        raise LoadError(path, f"undecodable text: {exc}") from None
    except ParseError as exc:
        raise LoadError(path, str(exc)) from None
    except OSError as exc:
        raise unreadable(path, exc) from None
    ocr_pages, warnings = scanned
    if not text.strip():
        raise LoadError(path, warnings[0] if warnings else "no text layer, and no text recognised in its images" if page_starts else "no text content")
    document = Document(path, text, content_hash, page_starts, ocr_pages=ocr_pages, warnings=warnings + (mail.unread if mail else ()))
    if mail is not None and mail.attachments:
        if not attachments:
            unread = f"{len(mail.attachments)} attachment(s) not indexed: the attachments of an attached mail are not read"
            return replace(document, warnings=(*document.warnings, unread))
        return _with_attachments(document, mail.attachments, config, guard)
    return document


def _with_attachments(mail: Document, attachments: tuple[tuple[str, bytes], ...], config: IngestConfig, guard: GuardedPdfReader) -> Document:
    """The mail with its attachments of supported types read as documents of their own
    (`mail.eml#name`); an attachment that cannot be read is a warning, not a lost mail."""
    read: list[Document] = []
    warnings = list(mail.warnings)
    names = unique_names([name for name, _ in attachments])
    with tempfile.TemporaryDirectory(prefix="rag-qa-mail-") as folder:
        for number, (name, (_, data)) in enumerate(zip(names, attachments)):
            copy = Path(folder, str(number), name)
            copy.parent.mkdir()
            copy.write_bytes(data)
            try:
                inner = load_document(str(copy), config, guard, attachments=False)
            except LoadError as error:
                warnings.append(f"attachment {name} not indexed: {error.reason}")
                continue
            warnings += [f"attachment {name}: {w}" for w in inner.warnings]
            source = attachment_source(mail.source, name)
            read.append(replace(inner, source=source, content_hash=f"{mail.content_hash}{ATTACHMENT_MARK}{inner.content_hash}", warnings=(), attached_to=mail.source))
    return replace(mail, attachments=tuple(read), warnings=tuple(warnings))


def unique_names(names: list[str]) -> list[str]:
    """Names made unique by numbering repeats before the suffix ("scan.pdf", "scan (2).pdf")."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        stem, suffix = os.path.splitext(name)
        unique.append(name if seen[name] == 1 else f"{stem} ({seen[name]}){suffix}")
    return unique


# Formats read in the guarded worker whose parts (slides, sheets, chapters) are pages: extractor, name in reasons.
PAGED_EXTRACTORS = {
    **dict.fromkeys(SLIDE_SUFFIXES, (extract_pptx, "PowerPoint deck")),
    **dict.fromkeys(WORKBOOK_SUFFIXES, (extract_xlsx, "Excel workbook")),
    **dict.fromkeys(EPUB_SUFFIXES, (extract_epub, "EPUB e-book")),
}


# Mail formats, read in the guarded worker: reader, name in reasons.
MAIL_READERS = {".eml": (read_mail, "e-mail"), ".msg": (read_outlook_msg, "Outlook message")}


# Formats read in the guarded worker as one text without pages.
UNPAGED_EXTRACTORS = {
    **dict.fromkeys(DOCX_SUFFIXES, (extract_docx, "Word document")),
    **dict.fromkeys(ODT_SUFFIXES, (extract_odt, "OpenDocument text")),
}


def _parsed_by_path(path: str, suffix: str, guard: GuardedPdfReader) -> tuple[str, tuple[int, ...]]:
    """Text and page starts of a Word or OpenDocument text, deck, workbook or e-book."""
    if suffix in UNPAGED_EXTRACTORS:
        extract, what = UNPAGED_EXTRACTORS[suffix]
        return clean_text(guard.call(extract, path, what=what)), ()
    extract, what = PAGED_EXTRACTORS[suffix]
    return _paged_text(guard.call(extract, path, what=what))


def _text_of_bytes(path: str, suffix: str, data: bytes, guard: GuardedPdfReader) -> str:
    """Text of a CSV, HTML or text file from its bytes (a text file is its decoded self: answers quote it at its own offsets)."""
    if suffix in CSV_SUFFIXES:
        return clean_text(guard.call(csv_text, decode_text(data), Path(path).name, what="CSV file"))
    if suffix in HTML_SUFFIXES:
        return clean_text(html_to_text(decode_text(data, declared_charset(data))))
    return decode_text(data)


def _check_unchanged(path: str, content_hash: str) -> None:
    """A file parsed by path (in the guarded worker) must still have the hash it is stored under:
    if it changed while being read, its text would be kept under the old version's hash."""
    if file_hash(path) != content_hash:
        raise LoadError(path, "the file changed while it was being read; run the command again to index the new version")


def _pdf_text(path: str, config: IngestConfig, pdf_reader: GuardedPdfReader, on_ocr_page: OcrProgress | None) -> tuple[str, tuple[int, ...], Scanned]:
    """One string for the whole PDF (pages joined by a blank line, running headers and footers
    removed), where each page starts, and the pages read by OCR with warnings about those not read."""
    pages, ocr_pages, warnings = read_scanned_pages(path, pdf_reader.extract(path), config, pdf_reader, on_ocr_page)
    text, page_starts = _paged_text(strip_running_lines(pages), join_lines=True)  # a PDF's lines are where the layout broke them
    return text.replace(ROW_BREAK, "\n"), page_starts, (ocr_pages, warnings)  # a table's rows stay lines


def _paged_text(pages: list[str], join_lines: bool = False) -> tuple[str, tuple[int, ...]]:
    """One string for pages (slides, sheets) joined by a blank line, and where each page starts
    (an empty page keeps its number). Lines stay lines (rows of tables and sheets) unless `join_lines`."""
    parts: list[str] = []
    page_starts: list[int] = []
    offset = 0
    hyphens = kept_hyphens("\n".join(pages)) if join_lines else frozenset()
    for page_text in pages:
        if parts:
            offset += len(PAGE_SEPARATOR)
        page_starts.append(offset)
        cleaned = clean_text(page_text, join_lines=join_lines, hyphens=hyphens)
        parts.append(cleaned)
        offset += len(cleaned)
    return PAGE_SEPARATOR.join(parts), tuple(page_starts)
