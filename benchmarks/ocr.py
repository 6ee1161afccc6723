"""OCR of scanned pages on this machine: pages per second and how many of the page's words come
back, for real pages scanned the way the tests scan them (tests/scans.py: rendered at 200 dpi and
wrapped as an image-only PDF; "photographed" adds a tilt, blur, grey paper and specks).

Pages: the sample safety guide, and the first pages of the Debian Reference manual when it is
installed (`apt-get install debian-reference-en`: dense, real typesetting). The truth for each page
is its text layer before scanning (pdfium). `word_recall`: the share of the page's words (runs of
letters and digits, as a multiset) that OCR returned; `seconds_per_page` includes rendering at 300 dpi.

Usage: python benchmarks/ocr.py [--manual-pages 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import REPO, machine, table

sys.path.insert(0, str(REPO / "tests"))
from scans import image_pdf, scan_pages  # noqa: E402

from rag_qa.ingest.ocr import recognise_page  # noqa: E402
from rag_qa.ingest.pdf import extract_pages  # noqa: E402

MANUAL = Path("/usr/share/debian-reference/debian-reference.en.pdf")
WORD = re.compile(r"[A-Za-z0-9]+")


def page_range(source: Path, first: int, count: int, folder: Path) -> Path:
    """Pages [first, first + count) of `source` as a PDF of their own."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(source).pages[first : first + count]:
        writer.add_page(page)
    target = folder / f"{source.stem}-{first}.pdf"
    writer.write(target)
    return target


def recall(truth: str, read: str) -> tuple[int, int]:
    """(words of `truth` found in `read`, words of `truth`), as multisets."""
    wanted, found = Counter(WORD.findall(truth)), Counter(WORD.findall(read))
    return sum(min(n, found[w]) for w, n in wanted.items()), sum(wanted.values())


def measure(name: str, source: Path, folder: Path, noisy: bool) -> dict[str, object]:
    truth = extract_pages(str(source)).pages
    scan = image_pdf(scan_pages(source, noisy=noisy), folder / f"{source.stem}-{int(noisy)}.pdf")
    started, hits, total = time.perf_counter(), 0, 0
    for index, text in enumerate(truth):
        page = recognise_page(str(scan), index, "eng", 120)
        h, t = recall(text, page.text)
        hits, total = hits + h, total + t
    seconds = time.perf_counter() - started
    return {
        "pages": f"{name} ({'photographed' if noisy else 'clean'} scan)", "count": len(truth), "words": total,
        "word_recall": round(hits / total, 4), "seconds_per_page": round(seconds / len(truth), 2), "pages_per_second": round(len(truth) / seconds, 3),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manual-pages", type=int, default=6, help="pages of the Debian Reference to scan (from page 20; default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        sources = [("sample guide", REPO / "data" / "safety-guide.pdf")]
        if MANUAL.exists():
            sources.append(("Debian Reference", page_range(MANUAL, 19, args.manual_pages, folder)))
        for name, source in sources:
            for noisy in (False, True):
                rows.append(measure(name, source, folder, noisy))
                print(f"  {rows[-1]['pages']}: {rows[-1]['seconds_per_page']} s per page", file=sys.stderr)
    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows}))
        return
    print(f"OCR on {machine()}")
    print(table(list(rows[0]), [list(r.values()) for r in rows]))


if __name__ == "__main__":
    main()
