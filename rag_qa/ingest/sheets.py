"""Spreadsheets: Excel workbooks (.xlsx, read with openpyxl, the maintained reader of the format,
in the guarded worker) and CSV files (the standard library's csv). A sheet is a page: answers
and the page view name the sheet's number in the workbook (a CSV file is one sheet, no page).

A sheet's text: its name, the header row, then one line per row naming each cell by its column's
header ("Tool: Drill; Deposit: 30"), so a question about a cell's value is answered with the cell
text and the passage says which row and column it came from. Formulas are read as the values the
spreadsheet program last computed and saved; empty rows and cells are left out.
"""

from __future__ import annotations

import csv
import datetime
import io
import zipfile
from collections.abc import Iterable
from typing import Any

from rag_qa.ingest.guard import ParseError
from rag_qa.ingest.packages import WORKBOOK, check_package
from rag_qa.ingest.tables import table_lines


class SheetsError(ParseError):
    """A spreadsheet could not be read; the message is the user-facing reason."""


def extract_xlsx(path: str) -> list[str]:
    """One text per worksheet, in workbook order."""
    check_package(path, WORKBOOK, SheetsError)
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)  # data_only: formulas' saved values
        try:
            return [sheet_text(sheet.title, sheet.iter_rows(values_only=True)) for sheet in workbook.worksheets]
        finally:
            workbook.close()
    except (InvalidFileException, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise SheetsError(f"malformed Excel workbook ({type(exc).__name__}: {exc})") from None
    except SyntaxError as exc:  # the XML parser's errors (ElementTree's ParseError is a SyntaxError)
        raise SheetsError(f"malformed Excel workbook (broken XML: {exc})") from None


def csv_text(text: str, name: str) -> str:
    """A CSV file's text as one sheet (its delimiter guessed from the first lines)."""
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        return sheet_text(name, csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error as exc:
        raise SheetsError(f"malformed CSV ({exc})") from None


def sheet_text(name: str, rows: Iterable[Iterable[Any]]) -> str:
    """"Sheet: NAME", the header row (the first row with a value), then each later row as "header: value" pairs."""
    table = [cells for cells in ([_cell(value) for value in row] for row in rows) if any(cells)]
    if not table:
        return ""
    return "\n".join(table_lines(table[0], table[1:], title=f"Sheet: {name}"))


def _cell(value: Any) -> str:
    """A cell as a person reads it: 30 not 30.0, a date without midnight, text without line breaks."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return " ".join(str(value).split())
