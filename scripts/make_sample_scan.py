"""Make data/late-returns-notice.pdf: a paper notice as a scanner returns it (one page, a picture
and no text layer, slightly tilted, with specks), so the demo shows OCR answering from a scan.

The notice is typeset with fpdf2, rendered with pdfium and photographed by the same helper the
OCR tests use (tests/scans.py). Usage: python scripts/make_sample_scan.py  (needs the `dev` extra)
"""

import sys
import tempfile
from pathlib import Path

from fpdf import FPDF

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from scans import scanned_pdf  # noqa: E402

TARGET = ROOT / "data" / "late-returns-notice.pdf"
TITLE = "NOTICE: Late Returns"
PARAGRAPHS = [
    "Tools are due back by closing time on the date shown on your loan slip.",
    "Late hand tools are charged one dollar per day. Late power tools are charged three dollars per day.",
    "Members who return a tool more than two weeks late may not borrow again for one month.",
    "After hours, please use the return chute beside the front door. Do not leave tools outside.",
    "Posted by the Harborview Tool Library volunteers.",
]


def notice(path: Path) -> Path:
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.multi_cell(0, 12, TITLE, align="C")
    pdf.ln(6)
    pdf.set_font("Helvetica", size=13)
    for paragraph in PARAGRAPHS:
        pdf.multi_cell(0, 7, paragraph)
        pdf.ln(4)
    pdf.output(str(path))
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scanned_pdf(notice(Path(scratch, "notice.pdf")), TARGET, noisy=True)
    print(f"wrote {TARGET} ({TARGET.stat().st_size // 1024} KB, an image-only page)")


if __name__ == "__main__":
    main()
