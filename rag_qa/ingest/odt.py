"""OpenDocument text (.odt, LibreOffice's and the ISO standard's word-processing format): headings,
paragraphs, lists and tables in reading order, read with odfpy in the guarded worker.

Why odfpy: it is the OpenDocument library pandas relies on for .ods, reads and writes ODF (the
tests write real files with it), and its `teletype` turns ODF's encoded spacing (text:s, tabs,
line breaks) back into text. Like the Office formats an .odt is a zip of XML parts: zip bombs and
renamed files are refused by `packages.py` before parsing; encrypted files and files carrying
macros are refused here from the package's manifest and part names.
"""

from __future__ import annotations

import contextlib
import io
import zipfile

from rag_qa.ingest.guard import ParseError
from rag_qa.ingest.packages import ODT, check_package
from rag_qa.ingest.tables import grid_lines

MACRO_FOLDERS = ("Basic/", "Scripts/")  # where ODF keeps macros (StarBasic, Python, JavaScript)
CONTAINERS = ("list", "list-item", "list-header", "section", "table-of-content", "index-body")  # elements whose blocks are read


class OdtError(ParseError):
    """An OpenDocument text could not be read; the message is the user-facing reason."""


def extract_odt(path: str) -> str:
    """Headings and paragraphs as paragraphs (blank line between), list items as paragraphs, a
    table as its header row and a line per row naming each cell by its header, in document order. Runs in the guarded worker."""
    check_package(path, ODT, OdtError)
    _check_manifest(path)
    from odf import opendocument
    from xml.parsers.expat import ExpatError
    from xml.sax import SAXParseException

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # odfpy prints a broken part's XML and carries on
            document = opendocument.load(path)
        if document.text is None:
            raise OdtError("malformed OpenDocument text (content.xml is not well-formed XML)")
        blocks = list(_blocks(document.text))
    except (ExpatError, SAXParseException) as exc:
        raise OdtError(f"malformed OpenDocument text (broken XML: {exc})") from None
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise OdtError(f"malformed OpenDocument text ({type(exc).__name__}: {exc})") from None
    return "\n\n".join(block for block in blocks if block.strip())


def _check_manifest(path: str) -> None:
    with zipfile.ZipFile(path) as package:
        names = package.namelist()
        manifest = package.read("META-INF/manifest.xml") if "META-INF/manifest.xml" in names else b""
    if b"encryption-data" in manifest:
        raise OdtError("encrypted OpenDocument text; a password is required to read it")
    if any(name.startswith(MACRO_FOLDERS) and not name.endswith("/") for name in names):
        raise OdtError("the document carries macros; rag-qa does not read files that carry macros: save a copy without them")


def _blocks(element):  # type: ignore[no-untyped-def]
    """The text blocks under `element` in order: paragraphs and headings, list items, table rows."""
    from odf import teletype

    for child in element.childNodes:
        name = getattr(child, "qname", (None, None))[1]
        if name in ("p", "h"):
            yield teletype.extractText(child)
        elif name == "table":
            yield "\n".join(_rows(child))
        elif name in CONTAINERS:  # (not tracked-changes: deleted text kept for review is not the document's text)
            yield from _blocks(child)


def _rows(table):  # type: ignore[no-untyped-def]
    """The table's lines in the form every table takes (`tables.grid_lines`); a cell covered by a
    merged one keeps its position, empty."""
    from odf import teletype

    grid = []
    for row in _descendants(table, "table-row"):
        cells = [child for child in row.childNodes if getattr(child, "qname", (None, None))[1] in ("table-cell", "covered-table-cell")]
        grid.append([teletype.extractText(cell) if cell.qname[1] == "table-cell" else "" for cell in cells])
    return grid_lines(grid)


def _descendants(element, name: str):  # type: ignore[no-untyped-def]
    for child in element.childNodes:
        if getattr(child, "qname", (None, None))[1] == name:
            yield child
        elif child.nodeType == child.ELEMENT_NODE:
            yield from _descendants(child, name)
