"""Loading real files, and refusing broken or hostile ones with a reason naming the file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from broken_files import make_broken_files, text_pdf
from guard_stand_ins import bloat, crash, hang
from pypdf import PdfReader

from rag_qa.config import IngestConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.loaders import discover, load_document
from rag_qa.ingest.pdf import GuardedPdfReader
from rag_qa.ingest.text import clean_text

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
    assert handbook.text == (REPO / "data" / "handbook.md").read_bytes().decode("utf-8")  # offsets index the file itself
    assert "The late fee is 2 dollars per tool per day" in clean_text(handbook.text, join_lines=True)
    assert handbook.page_starts == ()
    faq = load(REPO / "data" / "faq.html", pdf_reader)
    assert "donations of tools in working order" in faq.text
    assert "analyticsId" not in faq.text and "font-family" not in faq.text


def test_the_bytes_hashed_are_the_bytes_parsed(tmp_path, pdf_reader):
    """A file that changes between the hash that found it changed and the parse must not store the
    new text under the old hash: text files are hashed from the bytes parsed; a file parsed by path
    (PDF, Word) is refused when its hash changed meanwhile."""
    import hashlib

    notes = tmp_path / "notes.txt"
    notes.write_text("version B")
    document = load_document(str(notes), IngestConfig(), pdf_reader, content_hash="hash of version A")
    assert document.text == "version B" and document.content_hash == hashlib.sha256(b"version B").hexdigest()
    with pytest.raises(LoadError, match="changed while it was being read"):
        load_document(str(GUIDE), IngestConfig(), pdf_reader, content_hash="hash of an earlier version")


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


def test_discover_walks_with_globs_and_reports_missing_and_unsupported(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    for name in ["a/one.md", "a/b/two.txt", "a/b/skip.txt", "a/b/skip.xyz", "a/image.png", "three.html", ".git/config.txt", ".DS_Store"]:
        (tmp_path / name).write_text("x")
    (tmp_path / "notes.rtf").write_text("x")
    config = IngestConfig(exclude=("skip*",))
    files, problems = discover([str(tmp_path), str(tmp_path / "missing"), str(tmp_path / "notes.rtf")], config)
    assert sorted(Path(f).relative_to(tmp_path).as_posix() for f in files) == ["a/b/two.txt", "a/one.md", "three.html"]
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert reasons["missing"] == "no such file or directory"
    assert reasons["image.png"].startswith("unsupported format .png; supported: ")
    assert set(reasons) == {"missing", "image.png", "notes.rtf"}  # excluded and hidden files are not reported
    assert reasons["notes.rtf"].startswith("unsupported format .rtf")


@pytest.mark.parametrize(
    ("extract", "reason"),
    [(hang, "longer than 2 s"), (bloat, "memory limit"), (crash, "crashed")],
    ids=["hang", "memory", "crash"],
)
def test_guard_survives_hostile_parsing_and_keeps_working(tmp_path, extract, reason):
    good = text_pdf(tmp_path / "good.pdf")
    with GuardedPdfReader(timeout_s=2, memory_mb=512, extract=extract) as guarded:
        with pytest.raises(Exception, match=reason):
            guarded.extract(str(good))
        guarded.extract_fn = None  # the next worker uses the real parser
    with GuardedPdfReader(timeout_s=30) as reader:
        assert "Hello" in reader.extract(str(good)).pages[0]


def test_guard_restarts_worker_after_a_hang(tmp_path):
    good = text_pdf(tmp_path / "good.pdf")
    with GuardedPdfReader(timeout_s=1, extract=hang) as guarded:
        for _ in range(2):  # a killed worker is replaced, and the next file gets its own time limit
            started = time.monotonic()
            with pytest.raises(Exception, match="longer than"):
                guarded.extract(str(good))
            assert time.monotonic() - started < 20
    assert PdfReader(str(good)).pages
