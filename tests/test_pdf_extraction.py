"""PDF text as the page shows it: pdfium keeps the spaces pypdf loses in LaTeX-typeset PDFs, and an
index whose PDFs an earlier extractor read reads them again on the next run."""

from __future__ import annotations

import re
import shutil
import sqlite3

import pytest
from helpers import REPO, load_file

from rag_qa import RagQA
from rag_qa.ingest.loaders import EXTRACTOR_TAGS
from rag_qa.store.faiss_store import DATABASE

LATEX_MANUAL = "/usr/share/debian-reference/debian-reference.en.pdf"  # Debian's debian-reference-en package


@pytest.mark.integration
def test_a_latex_typeset_manual_keeps_the_spaces_between_its_words():
    from pathlib import Path

    if not Path(LATEX_MANUAL).exists():
        pytest.skip("needs Debian's debian-reference-en package (scripts/test.sh installs it)")
    document = load_file(Path(LATEX_MANUAL))
    page_41 = document.text[document.page_starts[40] : document.page_starts[41]]
    assert "There are two methods of associating a file" in page_41  # pypdf: "Therearetwomethodsofassociatingafile"
    words = document.text.split()
    glued = sum(bool(re.search(r"[A-Za-z]{25,}", word)) for word in words)
    assert glued / len(words) < 0.001, glued  # pypdf glued 4% of this file's words together


def test_pdfs_an_earlier_extractor_read_are_read_again_and_then_kept(tmp_path):
    shutil.copy(REPO / "data" / "safety-guide.pdf", tmp_path / "guide.pdf")
    with RagQA.open(tmp_path / "index") as qa:
        first = qa.index([tmp_path / "guide.pdf"])
        assert first.files_indexed == 1 and qa.store.files()[0]["content_hash"].endswith("+" + EXTRACTOR_TAGS[".pdf"])
    with sqlite3.connect(tmp_path / "index" / DATABASE) as db:  # as an index made when pypdf read PDFs stored it
        db.execute("UPDATE files SET content_hash = replace(content_hash, ?, '')", ("+" + EXTRACTOR_TAGS[".pdf"],))
    with RagQA.open(tmp_path / "index") as qa:
        again = qa.index([tmp_path / "guide.pdf"])
        assert again.changed == [str((tmp_path / "guide.pdf").resolve())] and again.files_indexed == 1
        assert qa.index([tmp_path / "guide.pdf"]).files_unchanged == 1
        assert qa.store.check() == []
