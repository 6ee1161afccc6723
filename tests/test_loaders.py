"""Loading real files, and refusing broken or hostile ones with a reason naming the file."""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from rag_qa.config import IngestConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.loaders import discover, load_document
from rag_qa.ingest.pdf import GuardedPdfReader, PdfPages

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "data" / "safety-guide.pdf"


@pytest.fixture(scope="module")
def pdf_reader():
    with GuardedPdfReader(timeout_s=60) as reader:
        yield reader


def load(path: Path, reader: GuardedPdfReader, **config) -> object:
    return load_document(str(path), IngestConfig(**config), reader)


def test_pdf_pages_and_offsets(pdf_reader):
    document = load(GUIDE, pdf_reader)
    assert len(document.page_starts) == 6
    offset = document.text.index("angle of about 75 degrees")
    assert document.page_at(offset) == 3
    assert document.page_at(document.text.index("Personal protective equipment")) == 1
    assert "Tool Safety and Care Guide\n" not in document.text[200:]  # running header removed
    assert "Page 2" not in document.text


def test_markdown_and_html_samples(pdf_reader):
    handbook = load(REPO / "data" / "handbook.md", pdf_reader)
    assert "The late fee is 2 dollars per tool per day" in handbook.text
    assert handbook.page_starts == ()
    faq = load(REPO / "data" / "faq.html", pdf_reader)
    assert "donations of tools in working order" in faq.text
    assert "analyticsId" not in faq.text and "font-family" not in faq.text


def _text_pdf(path: Path, text: str = "Hello from a real PDF.") -> Path:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def make_broken_files(folder: Path) -> dict[str, str]:
    """Broken files of every kind we promise to report, with a word expected in each reason."""
    folder.mkdir(parents=True, exist_ok=True)
    good = _text_pdf(folder / "good.pdf")
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
        "bomb.pdf": "PDF",
        "binary.txt": "binary",
        "blank.md": "no text",
    }


def test_every_broken_file_is_refused_with_its_reason(tmp_path, pdf_reader):
    expected = make_broken_files(tmp_path)
    for name, word in expected.items():
        with pytest.raises(LoadError) as raised:
            load(tmp_path / name, pdf_reader)
        assert raised.value.path.endswith(name)
        assert word.lower() in raised.value.reason.lower(), (name, raised.value.reason)
    assert "Hello from a real PDF" in load(tmp_path / "good.pdf", pdf_reader).text


def test_too_large_is_refused(tmp_path, pdf_reader):
    big = tmp_path / "big.txt"
    big.write_text("word " * 100_000)
    with pytest.raises(LoadError, match="too large"):
        load(big, pdf_reader, max_file_mb=0.1)


def test_discover_walks_with_globs_and_reports_missing(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["a/one.md", "a/b/two.txt", "a/b/skip.txt", "a/image.png", "three.html"]:
        (tmp_path / name).write_text("x")
    (tmp_path / "notes.docx").write_text("x")
    config = IngestConfig(exclude=("skip*",))
    files, problems = discover([str(tmp_path), str(tmp_path / "missing"), str(tmp_path / "notes.docx")], config)
    assert sorted(Path(f).relative_to(tmp_path).as_posix() for f in files) == ["a/b/two.txt", "a/one.md", "three.html"]
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert reasons["missing"] == "no such file or directory"
    assert "unsupported file type '.docx'" in reasons["notes.docx"]


# Stand-ins for pypdf misbehaving on a hostile file; module-level so the worker can import them.
def hang(path: str) -> PdfPages:
    time.sleep(3600)
    return PdfPages(())


def bloat(path: str) -> PdfPages:
    hog = [bytearray(64 * 2**20) for _ in range(64)]  # 4 GiB: over the limit
    return PdfPages((str(len(hog)),))


def crash(path: str) -> PdfPages:
    os._exit(139)


@pytest.mark.parametrize(
    ("extract", "reason"),
    [(hang, "longer than 2 s"), (bloat, "memory limit"), (crash, "crashed")],
    ids=["hang", "memory", "crash"],
)
def test_guard_survives_hostile_parsing_and_keeps_working(tmp_path, extract, reason):
    good = _text_pdf(tmp_path / "good.pdf")
    with GuardedPdfReader(timeout_s=2, memory_mb=512, extract=extract) as guarded:
        with pytest.raises(Exception, match=reason):
            guarded.extract(str(good))
        guarded.extract_fn = None  # the next worker uses the real parser
    with GuardedPdfReader(timeout_s=30) as reader:
        assert "Hello" in reader.extract(str(good)).pages[0]


def test_guard_restarts_worker_after_a_hang(tmp_path):
    good = _text_pdf(tmp_path / "good.pdf")
    with GuardedPdfReader(timeout_s=1, extract=hang) as guarded:
        for _ in range(2):  # a killed worker is replaced, and the next file gets its own time limit
            started = time.monotonic()
            with pytest.raises(Exception, match="longer than"):
                guarded.extract(str(good))
            assert time.monotonic() - started < 20
    assert PdfReader(str(good)).pages
