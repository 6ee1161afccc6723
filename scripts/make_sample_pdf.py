"""Render scripts/safety_guide.txt into data/safety-guide.pdf: one section a page, with a running
header and page footer, so the demo corpus has a real multi-page PDF with a text layer.

Usage: python scripts/make_sample_pdf.py  (needs the `dev` extra: fpdf2)
"""

from pathlib import Path

from fpdf import FPDF

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "scripts" / "safety_guide.txt"
TARGET = ROOT / "data" / "safety-guide.pdf"


class Guide(FPDF):
    def header(self) -> None:
        self.set_font("Helvetica", "I", 9)
        self.cell(0, 8, "Harborview Tool Library - Tool Safety and Care Guide", align="R")
        self.ln(12)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "I", 9)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")


def sections(text: str) -> list[tuple[str, list[str]]]:
    """(title, paragraphs) for each '# Title' block."""
    result: list[tuple[str, list[str]]] = []
    for block in text.split("\n# "):
        title, _, body = block.lstrip("# ").partition("\n")
        result.append((title.strip(), [p.strip() for p in body.split("\n\n") if p.strip()]))
    return result


def main() -> None:
    pdf = Guide(format="A4")
    pdf.set_creator("rag-qa scripts/make_sample_pdf.py")
    pdf.set_creation_date(__import__("datetime").datetime(2024, 3, 1))  # reproducible bytes
    for title, paragraphs in sections(SOURCE.read_text("utf-8")):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 9, title)
        pdf.ln(4)
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(3)
    pdf.output(str(TARGET))
    print(f"wrote {TARGET} ({pdf.page_no()} pages)")


if __name__ == "__main__":
    main()
