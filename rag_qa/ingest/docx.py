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
from rag_qa.ingest.tables import grid_lines


class DocxError(ParseError):
    """A Word document could not be read; the message is the user-facing reason."""


def extract_docx(path: str) -> str:
    """The document's text: headings and paragraphs as paragraphs (blank line between), a table
    as its header row, then a line per row naming each cell by its header, in the order they appear. Runs in the
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
    """The table in the form every table takes (`tables.grid_lines`): the first row names the
    columns, each later row a line naming its cells."""
    grid = []
    for number, row in enumerate(table.rows):
        cells, before = [], None
        for cell in row.cells:  # python-docx repeats a merged cell at each position it covers
            spanned = cell._tc is before
            cells.append(cell.text if number == 0 or not spanned else "")
            before = cell._tc
        grid.append(cells)
    return "\n".join(grid_lines(grid))
