"""Files for ingestion tests: a small real PDF, and broken or hostile files of every kind we
promise to report (each with a word its skip reason must contain)."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from fpdf import FPDF
from pypdf import PdfWriter


def text_pdf(path: Path, text: str = "Hello from a real PDF.") -> Path:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def lines_pdf(path: Path, *pages: list[str]) -> Path:
    """A PDF with one page per list of lines, each line a cell of 14 pt Helvetica."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=14)
    for lines in pages:
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def make_broken_files(folder: Path) -> dict[str, str]:
    """Broken files of every kind we promise to report, with a word expected in each reason."""
    folder.mkdir(parents=True, exist_ok=True)
    good = text_pdf(folder / "good.pdf")
    writer = PdfWriter(clone_from=str(good))
    writer.encrypt(user_password="secret", owner_password="owner")
    writer.write(folder / "encrypted.pdf")
    (folder / "truncated.pdf").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "fake.pdf").write_bytes(b"<html>this is not a pdf</html>")
    (folder / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(2000))
    scanned = FPDF()
    scanned.add_page()
    scanned.rect(20, 20, 100, 100, style="F")
    scanned.output(str(folder / "scanned.pdf"))
    bomb = zlib.compress(b"0" * 300_000_000, 9)
    (folder / "bomb.pdf").write_bytes(
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R>>endobj\n"
        b"4 0 obj<</Length " + str(len(bomb)).encode() + b"/Filter/FlateDecode>>stream\n" + bomb + b"\nendstream endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02\x03 not text \x00")
    (folder / "blank.md").write_text("   \n\n  \t \n", "utf-8")
    return {
        "encrypted.pdf": "password",
        "truncated.pdf": "PDF",
        "empty.pdf": "empty",
        "fake.pdf": "not a PDF",
        "garbage.pdf": "PDF",
        "scanned.pdf": "no text layer",
        "bomb.pdf": "no text layer",  # pdfium decodes the 300 MB stream (about 0.6 GB, under the worker's memory limit) and finds no text
        "binary.txt": "binary",
        "blank.md": "no text",
    }
