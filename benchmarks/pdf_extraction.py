"""PDF text extraction, pypdf against pdfium (pypdfium2), side by side on real PDFs: the sample
guide, the SQuAD articles as PDFs, and real manuals typeset by LaTeX and Texinfo (Debian's
r-doc-pdf, gnuplot-doc and debian-reference-en packages; install them with
`apt-get install r-doc-pdf gnuplot-doc debian-reference-en`, missing ones are skipped).

Per file and extractor: pages per second, and what the text costs search and reading:
- run_together: the share of words holding a run of 25+ letters (words glued together because
  spaces were lost: such words match no query and embed badly);
- ligatures: ligature characters left in the text (U+FB00-FB06: "ﬁnd" does not match "find");
- broken_hyphens: words split at a line end with a hyphen ("docu-\\nment");
- hyphen_marks: pdfium's mark (U+FFFE) where it joined a word hyphenated at a line end (a cleaner
  deletes the mark: "Win\ufffedows" is "Windows");
- control: control characters other than line breaks and tabs.
Reading order is not scored here (no ground truth); read the samples it prints with --show.

Usage: python benchmarks/pdf_extraction.py [--max-pages 150] [--show FILE:PAGE] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, SQUAD, table

MANUALS = [
    "/usr/share/debian-reference/debian-reference.en.pdf",
    "/usr/share/doc/gnuplot/gnuplot.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-intro.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-FAQ.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-data.pdf",
]
RUN_TOGETHER = re.compile(r"[A-Za-z]{25,}")
LIGATURES = re.compile("[\ufb00-\ufb06]")
BROKEN_HYPHEN = re.compile(r"[A-Za-z]-\r?\n[a-z]")
HYPHEN_MARK = "\ufffe"
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def pypdf_pages(path: Path, limit: int) -> list[str]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return [page.extract_text() or "" for page in reader.pages[:limit]]


def pdfium_pages(path: Path, limit: int) -> list[str]:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(path))
    try:
        texts = []
        for index in range(min(limit, len(document))):
            page = document[index]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return texts
    finally:
        document.close()


EXTRACTORS = {"pypdf": pypdf_pages, "pdfium": pdfium_pages}


def measure(path: Path, extractor: str, limit: int) -> dict:
    started = time.perf_counter()
    pages = EXTRACTORS[extractor](path, limit)
    seconds = time.perf_counter() - started
    text = "\n".join(pages)
    words = text.split()
    return {
        "file": path.name, "extractor": extractor, "pages": len(pages), "pages_per_second": round(len(pages) / seconds, 1),
        "words": len(words), "run_together_pct": round(100 * sum(bool(RUN_TOGETHER.search(w)) for w in words) / max(len(words), 1), 2),
        "ligatures": len(LIGATURES.findall(text)), "broken_hyphens": len(BROKEN_HYPHEN.findall(text)), "hyphen_marks": text.count(HYPHEN_MARK), "control": len(CONTROL.findall(text)),
    }  # fmt: skip


def corpus(work: Path) -> list[Path]:
    """The sample guide, the SQuAD articles as PDFs (where ../shared is), and the manuals installed."""
    sys.path.insert(0, str(REPO / "tests"))
    files = [REPO / "data" / "safety-guide.pdf"]
    if SQUAD.exists():
        from squad_pdfs import build_corpus

        build_corpus(SQUAD / "dev-eval.json", work / "squad")
        files += sorted((work / "squad").glob("*.pdf"))
    return files + [Path(m) for m in MANUALS if Path(m).exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-pages", type=int, default=150, help="pages read from each file (from the start)")
    parser.add_argument("--show", metavar="FILE:PAGE", help="print one page as each extractor reads it, e.g. debian-reference.en.pdf:41")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-qa-pdf-extraction-"))
    try:
        files = corpus(work)
        if args.show:
            name, page = args.show.rsplit(":", 1)
            path = next(f for f in files if f.name == name)
            for extractor, read in EXTRACTORS.items():
                print(f"--- {extractor}, {name} page {page}\n{read(path, int(page))[int(page) - 1][:1500]}\n")
            return
        rows = [measure(path, extractor, args.max_pages) for path in files for extractor in EXTRACTORS]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    headers = list(rows[0])
    print(table(headers, [[r[h] for h in headers] for r in rows]))
    for extractor in EXTRACTORS:
        mine = [r for r in rows if r["extractor"] == extractor]
        words, pages = sum(r["words"] for r in mine), sum(r["pages"] for r in mine)
        seconds = sum(r["pages"] / r["pages_per_second"] for r in mine)
        glued = sum(r["run_together_pct"] * r["words"] / 100 for r in mine)
        print(f"{extractor}: {pages} pages at {pages / seconds:.1f} pages/s; run-together words {100 * glued / words:.2f}% of {words}")


if __name__ == "__main__":
    main()
