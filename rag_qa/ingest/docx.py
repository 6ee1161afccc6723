"""Word documents (.docx): paragraphs, headings and tables in reading order, read with
python-docx (the maintained reader of the Office Open XML format) in the guarded worker.

A .docx is a zip of XML parts, so a hostile one can be a zip bomb, broken XML, an encrypted
package or something else renamed. Each is refused with its reason before (`packages.py`) or while
parsing; the worker's time and memory limits (`rag_qa.ingest.guard`) catch what slips past.
"""

from __future__ import annotations

import zipfile

from rag_qa.ingest.guard import ParseError
from rag_qa.ingest.packages import WORD, check_package

CELL_SEPARATOR = " | "  # as for HTML tables


class DocxError(ParseError):
    """A Word document could not be read; the message is the user-facing reason."""


def extract_docx(path: str) -> str:
    """The document's text: headings and paragraphs as paragraphs (blank line between), a table
    as one line per row with cells joined by " | ", in the order they appear. Runs in the
    guarded worker."""
    check_package(path, WORD, DocxError)
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
