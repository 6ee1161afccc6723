"""Small PDFs with tables, drawn with reportlab the way real typesetters draw them (each word
placed on its own where TeX would, rules as thin lines), one per trap a table reader meets."""

from __future__ import annotations

from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

FONT, SIZE = "Helvetica", 10
WIDTH, HEIGHT = A4


def new_pdf(path: Path) -> canvas.Canvas:
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setFont(FONT, SIZE)
    return pdf


def words(pdf: canvas.Canvas, x: float, y: float, text: str, size: float = SIZE) -> float:
    """Draw `text` one word at a time with no space glyphs between them (as TeX does); the x after it."""
    for word in text.split():
        pdf.setFont(FONT, size)
        pdf.drawString(x, y, word)
        x += pdf.stringWidth(word, FONT, size) + 0.33 * size
    return x - 0.33 * size


def prose(pdf: canvas.Canvas, y: float, lines: list[str], x: float = 60) -> float:
    for line in lines:
        words(pdf, x, y, line)
        y -= 1.2 * SIZE
    return y


def table(
    pdf: canvas.Canvas, x: float, y: float, widths: list[float], rows: list[list[str]], rules: str = "grid",
    pitch: float = 14.0, right_align: tuple[int, ...] = (), top_rule: bool = True,
) -> float:  # fmt: skip
    """Draw rows of cells from (x, y) down; `rules`: "grid" (every row and column), "booktabs"
    (top, under the header, bottom) or "none". A cell with "\n" takes several lines. The y below it."""
    total = sum(widths)
    top = y
    if rules in ("grid", "booktabs") and top_rule:
        pdf.line(x, y, x + total, y)
    for number, row in enumerate(rows):
        height = pitch * max(cell.count("\n") + 1 for cell in row)
        left = x
        for column, (cell, width) in enumerate(zip(row, widths)):
            for k, part in enumerate(cell.split("\n")):
                baseline = y - 10 - k * pitch
                if column in right_align and number > 0:
                    words(pdf, left + width - 6 - pdf.stringWidth(part, FONT, SIZE), baseline, part)
                else:
                    words(pdf, left + 6, baseline, part)
            left += width
        y -= height
        if rules == "grid" or (rules == "booktabs" and number == 0):
            pdf.line(x, y, x + total, y)
    if rules == "booktabs":
        pdf.line(x, y, x + total, y)
    if rules == "grid":
        left = x
        for width in [0.0, *widths]:
            left += width
            pdf.line(left, top, left, y)
    return y
