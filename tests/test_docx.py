"""Word documents: paragraphs, headings and tables in reading order with offsets into the
extracted text, hostile files refused one by one with a reason, uploads through the service."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest
from helpers import READER, needs_shared

from rag_qa import RagQA
from rag_qa.config import IngestConfig, ReaderConfig, ServerConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.loaders import load_document
from rag_qa.ingest.pdf import GuardedPdfReader
from rag_qa.server.background import live_service


def handbook_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Harborview Tool Library handbook", level=0)
    document.add_paragraph("Members borrow tools for seven days. A loan can be renewed once.")
    table = document.add_table(rows=3, cols=3)
    for row, cells in zip(table.rows, [("Tool", "Deposit", "Late fee"), ("Drill", "20 dollars", "2 dollars a day"), ("Saw", "", "")]):
        for cell, text in zip(row.cells, cells):
            cell.text = text
    table.cell(2, 1).merge(table.cell(2, 2)).text = "ask at the desk"
    document.add_heading("Repairs", level=2)
    document.add_paragraph("Broken tools go to the volunteer repair café on Fridays.")
    document.save(str(path))
    return path


def hostile_files(folder: Path, good: Path) -> dict[str, str]:
    """Broken or hostile .docx files, with a word each one's reason must contain."""
    from msoffcrypto.format.ooxml import OOXMLFile

    folder.mkdir(parents=True, exist_ok=True)
    with open(good, "rb") as plain, open(folder / "encrypted.docx", "wb") as locked:
        OOXMLFile(plain).encrypt("secret", locked)
    (folder / "renamed.docx").write_text("This is a plain text file with the wrong name.")
    (folder / "truncated.docx").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(folder / "broken-xml.docx", "w") as broken:
        for item in source.infolist():
            data = source.read(item)
            broken.writestr(item, b"<w:document><w:body><w:p>unclosed" if item.filename == "word/document.xml" else data)
    with zipfile.ZipFile(folder / "bomb.docx", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("[Content_Types].xml", "<Types/>")
        bomb.writestr("word/document.xml", b"<" + b"a" * 300_000_000)  # 300 MB in about 300 kB
    with zipfile.ZipFile(folder / "no-document.docx", "w") as other:
        other.writestr("hello.txt", "a zip, but not a Word document")
    return {"encrypted.docx": "encrypted", "renamed.docx": "not a Word document", "truncated.docx": "truncated",
            "broken-xml.docx": "broken XML", "bomb.docx": "zip bomb", "no-document.docx": "without word/document.xml"}  # fmt: skip


def test_paragraphs_headings_and_tables_in_reading_order(tmp_path):
    path = handbook_docx(tmp_path / "handbook.docx")
    with GuardedPdfReader(timeout_s=60) as guard:
        document = load_document(str(path), IngestConfig(), guard)
    assert document.text == (
        "Harborview Tool Library handbook\n\n"
        "Members borrow tools for seven days. A loan can be renewed once.\n\n"
        "Tool | Deposit | Late fee\nTool: Drill; Deposit: 20 dollars; Late fee: 2 dollars a day\nTool: Saw; Deposit: ask at the desk\n\n"
        "Repairs\n\n"
        "Broken tools go to the volunteer repair café on Fridays."
    )
    assert document.page_starts == ()


@pytest.mark.integration
def test_hostile_word_files_are_reported_and_the_rest_is_indexed(tmp_path):
    folder = tmp_path / "docs"
    good = handbook_docx(tmp_path / "handbook.docx")
    expected = hostile_files(folder, good)
    (folder / "handbook.docx").write_bytes(good.read_bytes())
    with RagQA.open(tmp_path / "index") as qa:
        report = qa.index([folder])
        skipped = {Path(s["path"]).name: s["reason"] for s in report.files_skipped}
        assert set(skipped) == set(expected), skipped
        for name, word in expected.items():
            assert word in skipped[name], (name, skipped[name])
        assert report.files_indexed == 1 and qa.store.check() == []
        hits = qa.search("late fee for a drill", top_k=1, mode="bm25")
        text = qa.show(hits[0].passage.source).text
        assert text[hits[0].passage.char_start : hits[0].passage.char_end] == hits[0].passage.text


@pytest.mark.integration
def test_a_word_document_uploaded_to_the_service_answers_with_exact_offsets(tmp_path):
    needs_shared(READER)
    data = handbook_docx(tmp_path / "handbook.docx").read_bytes()
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=str(READER))) as qa, live_service(qa, ServerConfig(upload_dir=str(tmp_path / "uploads"))) as url:
        report = httpx.post(f"{url}/documents", files=[("files", ("handbook.docx", io.BytesIO(data)))], timeout=120, headers={"Authorization": "Bearer open-service"}).json()
        assert report["files_indexed"] == 1 and report["documents"][0]["indexed"]
        result = httpx.post(f"{url}/ask", json={"question": "How many days can members borrow tools for?"}, timeout=60).json()
        best = result["answers"][0] if not result["abstained"] else result["best_guess"]
        shown = httpx.get(f"{url}/documents/handbook.docx/text", timeout=60).json()
        assert shown["text"][best["start"] : best["end"]] == best["text"] and best["text"] in ("seven", "seven days")
        assert best["page"] is None


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.docx", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("word/document.xml", b"a" * 50_000_000)
    with GuardedPdfReader(timeout_s=60) as guard, pytest.raises(LoadError, match="zip bomb"):
        load_document(str(tmp_path / "bomb.docx"), IngestConfig(), guard)
