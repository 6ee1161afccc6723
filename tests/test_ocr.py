"""Scanned PDF pages read by Tesseract OCR: a page rendered to a picture and wrapped as an
image-only PDF (as a scanner makes it), clean and photographed; a mixed PDF OCRs only its scanned
page; answers on a scanned page are marked where the word is in the picture; OCR off, Tesseract
missing and a language not installed are reported, not silent."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from fpdf import FPDF
from broken_files import lines_pdf
from helpers import READER, load_file, needs_shared
from pypdf import PdfWriter
from scans import scanned_pdf
from test_pages import contains, pdfium_word_box

from rag_qa import RagQA
from rag_qa.config import IngestConfig, ReaderConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.loaders import load_document
from rag_qa.ingest.ocr import layout
from rag_qa.ingest.pdf import GuardedPdfReader, _too_little_text

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)")

DIGITAL_PAGE = ["Opening hours", "The tool library opens at nine on Saturdays and closes at one."]
SCANNED_PAGE = ["Late returns", "The late fee for overdue tools is two dollars per day.", "Returns after closing go in the drop box beside the front door."]
PHOTOGRAPHED_PAGE = ["Lost property", "Lost property is kept behind the counter for thirty days."]


def mixed_pdf(folder: Path) -> tuple[Path, Path]:
    """A two-page PDF: page 1 digital, page 2 a scan (and the text PDF page 2 was scanned from)."""
    original = lines_pdf(folder / "original.pdf", DIGITAL_PAGE, SCANNED_PAGE)
    scan = scanned_pdf(original, folder / "scan.pdf")
    writer = PdfWriter()
    writer.append(str(original), pages=[0])
    writer.append(str(scan), pages=[1])
    writer.write(folder / "rules.pdf")
    return folder / "rules.pdf", original


def read(path: Path, **ingest) -> object:
    with GuardedPdfReader(timeout_s=60) as guard:
        return load_document(str(path), IngestConfig(**ingest), guard)


@needs_tesseract
@pytest.mark.integration
def test_a_scanned_page_answers_and_its_answer_is_marked_on_the_picture(tmp_path):
    needs_shared(READER)
    made, folder = tmp_path / "made", tmp_path / "docs"
    made.mkdir(), folder.mkdir()
    mixed, original = mixed_pdf(made)
    shutil.copy(mixed, folder / "rules.pdf")
    scanned_pdf(lines_pdf(made / "lost.pdf", PHOTOGRAPHED_PAGE), folder / "photographed.pdf", noisy=True)
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=str(READER))) as qa:
        report = qa.index([folder])
        assert report.files_indexed == 2 and report.ocr_pages == 2 and report.warnings == [] and report.seconds["ocr"] > 0
        rules = str((folder / "rules.pdf").resolve())
        assert "nine on Saturdays" in qa.show(rules, 1).text  # the digital page, read as text
        assert "two dollars per day" in qa.show(rules, 2).text  # the scanned page, read by OCR
        for question, source, answer, page in [
            ("How much is the late fee for overdue tools?", "rules.pdf", "two dollars", 2),
            ("How long is lost property kept?", "photographed.pdf", "thirty days", 1),
        ]:
            result = qa.ask(question, sources=[str(folder / source)])
            best = result.answers[0] if result.answers else result.best_guess
            assert best is not None and answer in best.text and best.page == page, (question, best)
            assert qa.show(best.source).text[best.start : best.end] == best.text
        word = qa.show(rules, 2)
        at = word.text.index("dollars")
        boxes = qa.boxes(rules, word.start + at, word.start + at + len("dollars"))
        assert len(boxes) == 1 and boxes[0].page == 2
        ours, theirs = (boxes[0].left, boxes[0].top, boxes[0].right, boxes[0].bottom), pdfium_word_box(original, 2, "dollars")
        assert contains(theirs, ours, slack=0.006), (ours, theirs)  # within the rendered word's box...
        assert ours[2] - ours[0] > 0.8 * (theirs[2] - theirs[0]), (ours, theirs)  # ...and covering it


@needs_tesseract
def test_only_the_scanned_page_of_a_mixed_pdf_is_read_by_ocr(tmp_path):
    mixed, _ = mixed_pdf(tmp_path)
    document = read(mixed)
    assert [page.page for page in document.ocr_pages] == [2] and document.warnings == ()
    second = document.text[document.page_starts[1] :]
    assert second.startswith("Late returns") and "drop box beside the front door" in second
    for start, end, *box in document.ocr_pages[0].words:  # every word's box is on the page, left of its right edge
        assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1, box
        assert document.ocr_pages[0].text[start:end].strip() == document.ocr_pages[0].text[start:end]


def test_with_ocr_off_scanned_pages_are_reported_not_dropped(tmp_path):
    mixed, _ = mixed_pdf(tmp_path)
    document = read(mixed, ocr=False)
    assert document.ocr_pages == () and "nine on Saturdays" in document.text
    assert document.warnings == ("page 2 scanned without a text layer and not read: OCR is off (--no-ocr)",)
    with pytest.raises(LoadError, match="OCR is off"):
        read(scanned_pdf(lines_pdf(tmp_path / "one.pdf", SCANNED_PAGE), tmp_path / "only-scan.pdf"), ocr=False)


def test_without_tesseract_the_install_hint_is_given(tmp_path, monkeypatch):
    scan = scanned_pdf(lines_pdf(tmp_path / "one.pdf", SCANNED_PAGE), tmp_path / "only-scan.pdf")
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # the worker starts with no tesseract on its PATH
    with pytest.raises(LoadError, match="Tesseract is not installed.*apt-get install tesseract-ocr") as refused:
        read(scan)
    assert refused.value.path == str(scan)


@needs_tesseract
def test_a_language_not_installed_names_its_package(tmp_path):
    scan = scanned_pdf(lines_pdf(tmp_path / "one.pdf", SCANNED_PAGE), tmp_path / "only-scan.pdf")
    with pytest.raises(LoadError, match="'eng\\+zzz' is not installed.*tesseract-ocr-zzz"):
        read(scan, ocr_languages="eng+zzz")


def test_a_garbage_text_layer_counts_as_no_text_layer():
    assert _too_little_text("") and _too_little_text(" 12 \n")
    assert _too_little_text("\ue001\ue002\ue003 \ue004\ue005\ue006\ue007\ue008 \ue009\ue00a\ue00b\ue00c\ue00d\ue00e\ue00f\ue010\ue011\ue012\ue013 ab")
    assert not _too_little_text("The tool library opens at nine on Saturdays.")


def test_layout_keeps_lines_and_paragraphs_and_drops_specks():
    words = [  # (text, confidence, block, paragraph, line, left)
        ("Late", 95, 1, 1, 1, 10), ("fees", 91, 1, 1, 1, 60), ("two", 90, 1, 1, 2, 10), ("~", 12, 1, 1, 2, 90),
        ("dollars", 88, 1, 1, 2, 40), ("", -1, 1, 2, 0, 0), ("Drop", 80, 1, 2, 1, 10),
    ]
    data = {
        "text": [w[0] for w in words], "conf": [w[1] for w in words], "page_num": [1] * len(words), "block_num": [w[2] for w in words],
        "par_num": [w[3] for w in words], "line_num": [w[4] for w in words], "left": [w[5] for w in words], "top": [20] * len(words),
        "width": [30] * len(words), "height": [10] * len(words),
    }  # fmt: skip
    text, boxes = layout(data, width=200, height=100)
    assert text == "Late fees\ntwo dollars\n\nDrop"
    assert [text[s:e] for s, e, *_ in boxes] == ["Late", "fees", "two", "dollars", "Drop"]
    assert boxes[1][2:] == (0.3, 0.2, 0.45, 0.3)


def test_a_scanned_only_pdf_without_images_says_so(tmp_path):
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 100, style="F")
    pdf.output(str(tmp_path / "drawing.pdf"))
    with pytest.raises(LoadError, match="no text layer, and no text recognised"):
        load_file(tmp_path / "drawing.pdf")
