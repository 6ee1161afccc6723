"""HTML pages shaped like the real world, through the loader (decode, parse, clean): what a
reader sees in a browser is what gets indexed, and nothing hidden is."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rag_qa.config import IngestConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.loaders import load_document
from rag_qa.ingest.pdf import GuardedPdfReader


@pytest.fixture(scope="module")
def pdf_reader():
    with GuardedPdfReader(timeout_s=30) as reader:
        yield reader


@pytest.fixture
def extract(tmp_path: Path, pdf_reader):
    def run(page: str | bytes, name: str = "page.html") -> str:
        path = tmp_path / name
        path.write_bytes(page.encode("utf-8") if isinstance(page, str) else page)
        return load_document(str(path), IngestConfig(), pdf_reader).text

    return run


PAGES = json.loads((Path(__file__).parent / "data" / "html_pages.json").read_text("utf-8"))
PAGES.append({"id": "nesting-5000-deep", "page": "<p>" + "<div>" * 5000 + "deep" + "</div>" * 5000 + "</p>", "expected": "deep"})


@pytest.mark.parametrize("case", PAGES, ids=[c["id"] for c in PAGES])
def test_real_world_shaped_pages(extract, case: dict) -> None:
    """Pages with implicit closes, missing </head> and </body>, entities, comments, CDATA,
    misnesting, hidden parts, tables, <pre>, scripts and emoji (tests/data/html_pages.json)."""
    assert extract(case["page"]) == case["expected"]


def test_meta_charset_that_disagrees_with_the_bytes(extract) -> None:
    utf8_but_declared_latin1 = "<meta charset='iso-8859-1'><p>Crème brûlée at the café</p>".encode("utf-8")
    assert extract(utf8_but_declared_latin1) == "Crème brûlée at the café"
    cp1252_but_declared_utf8 = "<meta charset='utf-8'><p>Crème brûlée at the café, “quoted” for 5 €</p>".encode("cp1252")
    assert extract(cp1252_but_declared_utf8, "b.html") == "Crème brûlée at the café, “quoted” for 5 €"


def test_a_page_without_text_is_reported(extract) -> None:
    with pytest.raises(LoadError, match="no text content"):
        extract("<html><head><title></title><script>document.write('x')</script></head><body><img src='a.png'></body></html>")


@pytest.mark.integration
def test_one_20_mb_line(extract) -> None:
    started = time.perf_counter()
    text = extract("<html><body><p>" + "word " * 4_000_000 + "</p></body></html>")
    assert len(text) == 4_000_000 * 5 - 1 and text.startswith("word word")
    print(f"\n20 MB one-line page extracted in {time.perf_counter() - started:.1f} s")
