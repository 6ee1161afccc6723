"""Word documents (.docx): paragraphs, headings and tables in reading order, read with
python-docx (the maintained reader of the Office Open XML format) in the guarded worker.

A .docx is a zip of XML parts, so a hostile one can be a zip bomb, broken XML, an encrypted
package or something else renamed. Each is refused with its reason before or while parsing; the
worker's time and memory limits (`rag_qa.ingest.guard`) catch what slips past the checks.
"""

from __future__ import annotations

import zipfile

from rag_qa.ingest.guard import ParseError

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: encrypted OOXML, or a legacy .doc
ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_RATIO = 200  # uncompressed / compressed bytes of one part; real documents stay far below
CELL_SEPARATOR = " | "  # as for HTML tables


class DocxError(ParseError):
    """A Word document could not be read; the message is the user-facing reason."""


def check_package(path: str) -> None:
    """Refuse what is not a readable .docx, from its bytes and zip directory alone."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head.startswith(OLE_MAGIC):
            handle.seek(0)
            if ENCRYPTED_PACKAGE in handle.read(1 << 20):
                raise DocxError("encrypted Word document; a password is required to read it")
            raise DocxError("a legacy Word 97-2003 file (.doc), not .docx; save it as .docx")
    if not head.startswith(ZIP_MAGIC):
        raise DocxError(f"not a Word document (a .docx is a zip file; this starts with {head!r})")
    try:
        with zipfile.ZipFile(path) as package:
            parts = package.infolist()
    except zipfile.BadZipFile as exc:
        raise DocxError(f"malformed or truncated Word document ({exc})") from None
    if not any(p.filename == "word/document.xml" for p in parts):
        raise DocxError("not a Word document (a zip file without word/document.xml)")
    if sum(p.file_size for p in parts) > MAX_UNPACKED_BYTES:
        raise DocxError(f"zip bomb: it would unpack to more than {MAX_UNPACKED_BYTES >> 20} MB")
    if any(p.file_size > MAX_RATIO * max(p.compress_size, 1) and p.file_size > 1 << 20 for p in parts):
        raise DocxError(f"zip bomb: a part is compressed more than {MAX_RATIO} to 1")


def extract_docx(path: str) -> str:
    """The document's text: headings and paragraphs as paragraphs (blank line between), a table
    as one line per row with cells joined by " | ", in the order they appear. Runs in the
    guarded worker."""
    check_package(path)
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from lxml.etree import XMLSyntaxError

    try:
        document = docx.Document(path)
        blocks = [_table_text(block) if isinstance(block, Table) else block.text for block in document.iter_inner_content()]
    except XMLSyntaxError as exc:
        raise DocxError(f"malformed Word document (broken XML: {exc})") from None
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DocxError(f"malformed Word document ({type(exc).__name__}: {exc})") from None
    return "\n\n".join(block for block in blocks if block.strip())


def _table_text(table) -> str:  # type: ignore[no-untyped-def]
    """One line per row; a merged cell (the same cell repeated across the row) once."""
    lines = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(CELL_SEPARATOR.join(cells))
    return "\n".join(lines)
