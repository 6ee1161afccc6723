"""PDF pages as evidence: rendered pages and the boxes of answer characters on them, through the
Python API and the HTTP endpoints, checked against where pdfium itself finds the words."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import pytest
from fpdf import FPDF
from broken_files import lines_pdf
from helpers import READER, needs_shared
from PIL import Image
from pypdf import PdfReader, PdfWriter

from rag_qa import RagQA
from rag_qa.config import ReaderConfig, ServerConfig
from rag_qa.errors import NotFoundError, RagQAError
from rag_qa.pages import PageGlyphs, glyph_of_each_char, line_boxes
from rag_qa.server.background import live_service

pytestmark = pytest.mark.integration

PAGES = [
    ["Workshop rules for members of the tool library.", "Safety glasses are lent free of charge."],
    ["The band saw was an extraordin-", "ary success in its first year, and", "the lathe followed in spring."],
    ["Sharpening is done on Fridays", "by the volunteer repair team."],
]


def build_pdf(path: Path, rotate_last: bool = False) -> Path:
    """Three pages of short lines, a word hyphenated across a line end on page 2, and (optionally)
    the last page rotated by 90 degrees."""
    lines_pdf(path, *PAGES)
    if rotate_last:
        writer = PdfWriter(clone_from=str(path))
        writer.pages[-1].rotate(90)
        writer.write(path)
    return path


def pdfium_word_box(path: Path, page_number: int, word: str) -> tuple[float, float, float, float]:
    """The tight box pdfium reports for `word` on the page, as fractions (left, top, right, bottom)
    of the displayed (rotated) page."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    page = pdf[page_number - 1]
    text_page = page.get_textpage()
    index, count = text_page.search(word, match_case=True, match_whole_word=True).get_next()
    boxes = [text_page.get_charbox(i) for i in range(index, index + count)]
    width, height = page.get_width(), page.get_height()  # as displayed
    rotation = page.get_rotation()
    pdf.close()
    l, b, r, t = min(x[0] for x in boxes), min(x[1] for x in boxes), max(x[2] for x in boxes), max(x[3] for x in boxes)
    if rotation == 0:
        return l / width, 1 - t / height, r / width, 1 - b / height
    assert rotation == 90  # page space is the unrotated page (height × width as displayed)
    return b / width, l / height, t / width, r / height


def contains(outer, inner, slack: float = 0.004) -> bool:
    return outer[0] - slack <= inner[0] and outer[1] - slack <= inner[1] and inner[2] <= outer[2] + slack and inner[3] <= outer[3] + slack


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    pdf = build_pdf(folder / "rules.pdf", rotate_last=True)
    (folder / "notes.txt").write_text("Plain notes have no pages.")
    qa = RagQA.open(folder / "index")
    report = qa.index([pdf, folder / "notes.txt"])
    assert report.files_indexed == 2
    yield qa, str(pdf.resolve()), folder
    qa.close()


@pytest.mark.parametrize("page", [1, 2, 3], ids=["page-1", "page-2", "rotated-page-3"])
def test_every_word_of_a_page_gets_the_box_pdfium_reports(indexed, page):
    qa, pdf, _ = indexed
    shown = qa.show(pdf, page)
    words = [(m.start(), m.group()) for m in re.finditer(r"[A-Za-z]{4,}", shown.text) if m.group() != "extraordinary"]  # (next test)
    assert len(words) >= 5
    for at, word in words:
        boxes = qa.boxes(pdf, shown.start + at, shown.start + at + len(word))
        assert len(boxes) == 1 and boxes[0].page == page, word
        ours = (boxes[0].left, boxes[0].top, boxes[0].right, boxes[0].bottom)
        theirs = pdfium_word_box(Path(pdf), page, word)
        assert contains(ours, theirs), (word, ours, theirs)  # our loose box holds pdfium's tight glyphs
        assert ours[2] - ours[0] < 1.2 * (theirs[2] - theirs[0]) + 0.01, word  # and no more than the word


def test_a_word_rejoined_across_a_line_end_is_marked_on_both_lines(indexed):
    qa, pdf, _ = indexed
    shown = qa.show(pdf, 2)
    at = shown.text.index("extraordinary success")  # the cleaned text undid the hyphenation
    boxes = qa.boxes(pdf, shown.start + at, shown.start + at + len("extraordinary success"))
    assert len(boxes) == 2 and boxes[0].bottom <= boxes[1].top + 0.005
    assert contains((boxes[0].left, boxes[0].top, boxes[0].right, boxes[0].bottom), pdfium_word_box(Path(pdf), 2, "extraordin"))


def test_a_range_across_a_page_break_has_boxes_on_both_pages(indexed):
    qa, pdf, _ = indexed
    first, second = qa.show(pdf, 1), qa.show(pdf, 2)
    boxes = qa.boxes(pdf, first.end - len("charge."), second.start + len("The band"))
    assert [b.page for b in boxes] == [1, 2]


def test_page_images_are_validated_rendered_and_refused_when_the_file_changed(indexed, tmp_path):
    qa, pdf, folder = indexed
    image = Image.open(io.BytesIO(qa.page_image(pdf, 3, width=300)))
    assert image.format == "PNG" and image.width == 300 and image.height < image.width  # page 3 is rotated to landscape
    with pytest.raises(NotFoundError, match="page 4 does not exist"):
        qa.page_image(pdf, 4)
    with pytest.raises(RagQAError, match="width must be between"):
        qa.page_image(pdf, 1, width=5000)
    with pytest.raises(NotFoundError, match="not a PDF"):
        qa.page_image(folder / "notes.txt", 1)
    assert qa.boxes(folder / "notes.txt", 0, 5) == []
    copy = tmp_path / "index"
    moved = folder / "rules.pdf"
    original = moved.read_bytes()
    try:
        moved.write_bytes(original + b"\n% appended\n")
        with pytest.raises(RagQAError, match="changed since it was indexed"):
            qa.page_image(pdf, 1)
        moved.unlink()
        with pytest.raises(NotFoundError, match="no longer on disk"):
            qa.boxes(pdf, 0, 10)
    finally:
        moved.write_bytes(original)
    assert not copy.exists() and PdfReader(str(moved)).pages


def test_http_page_images_and_boxes(indexed):
    needs_shared(READER)
    qa, pdf, folder = indexed
    qa.reader = type(qa.reader)(ReaderConfig(model=str(READER)))
    with live_service(qa, ServerConfig(upload_dir=str(folder / "uploads"))) as url:
        base = f"{url}/documents/{pdf}"
        response = httpx.get(f"{base}/pages/2.png", params={"width": 400}, timeout=60)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).width == 400
        again = httpx.get(f"{base}/pages/2.png", params={"width": 400}, headers={"If-None-Match": response.headers["etag"]}, timeout=60)
        assert again.status_code == 304 and not again.content
        assert httpx.get(f"{base}/pages/9.png", timeout=60).status_code == 404
        assert httpx.get(f"{base}/pages/2.png", params={"width": 99999}, timeout=60).status_code == 422
        shown = qa.show(pdf, 2)
        at = shown.start + shown.text.index("lathe")
        found = httpx.get(f"{base}/boxes", params={"start": at, "end": at + 5}, timeout=60).json()
        assert found["pages"] == 3 and found["boxes"] == [b.to_dict() for b in qa.boxes(pdf, at, at + 5)]


def test_alignment_skips_what_one_side_lacks():
    lines = [(0, 10, 1, 11), (1, 10, 2, 11), (2, 10, 3, 11), None, None, (0, 8, 1, 9), (1, 8, 2, 9)]  # page space: y up
    glyphs = PageGlyphs("ab-\r\ncd", tuple(lines), (0.1, 0, 0, -0.1, 0, 1.2))  # 10 x 12 page, y flipped
    glyph = glyph_of_each_char("abcd", glyphs)
    assert glyph == [0, 1, 5, 6]
    merged = line_boxes([glyphs.boxes[i] for i in glyph])
    assert merged == [(0, 10, 2, 11), (0, 8, 2, 9)]
    assert glyphs.displayed(merged[0]) == pytest.approx((0, 0.1, 0.2, 0.2))


def test_alignment_finds_lines_that_pdfium_orders_differently():
    box = (0, 0, 1, 1)
    glyphs = PageGlyphs("lathe\r\nband saw", (box,) * 5 + (None, None) + (box,) * 4 + (None,) + (box,) * 3, (1, 0, 0, -1, 0, 1))
    assert glyph_of_each_char("band saw\nlathe", glyphs) == [7, 8, 9, 10, None, 12, 13, 14, None, 0, 1, 2, 3, 4]


def test_the_image_cache_is_bounded_in_bytes() -> None:
    from rag_qa.pages import ByteBoundedCache

    cache = ByteBoundedCache(10)
    cache.put("a", b"1234"), cache.put("b", b"5678")
    assert cache.get("a") == b"1234"  # "a" is now the most recent
    cache.put("c", b"9012")  # 12 bytes: the least recent ("b") goes
    assert (cache.get("b"), cache.get("a"), cache.get("c"), cache.size) == (None, b"1234", b"9012", 8)
    cache.put("huge", b"x" * 11)  # larger than the whole cache: not kept, nothing evicted
    assert cache.get("huge") is None and cache.size == 8


def test_a_hostile_page_cannot_tie_up_the_page_view(tmp_path: Path) -> None:
    """20,000 identical glyphs whose text disagrees at the ends make the general alignment
    quadratic (minutes): it runs in a guarded worker under the time limit, and meanwhile another
    document's page is rendered by another worker."""
    import threading

    from rag_qa.ingest.loaders import file_hash
    from rag_qa.pages import PdfPageViewer

    crafted, plain = tmp_path / "crafted.pdf", build_pdf(tmp_path / "plain.pdf")
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=3)
    pdf.multi_cell(0, 1.2, "a" * 20_000)
    pdf.output(str(crafted))
    disagreeing = "b" + "a" * 19_998 + "c"  # stored text that differs from pdfium's: no linear fast path

    viewer = PdfPageViewer(timeout_s=600, workers=2)
    outcome: list[BaseException] = []
    slow = threading.Thread(target=lambda: outcome.append(pytest.raises(RagQAError, viewer.boxes, str(crafted), file_hash(str(crafted)), 1, disagreeing, 0, 5).value))
    slow.start()
    while viewer._workers.qsize() != 1:  # the crafted page holds one worker
        slow.join(0.05)
    png = viewer.render(str(plain), file_hash(str(plain)), 1, 200)  # the other worker answers
    assert png.startswith(b"\x89PNG") and slow.is_alive()
    viewer.close()  # stops the workers: the crafted page's call ends with an error
    slow.join(60)
    assert "crashed" in str(outcome[0]) or "took longer" in str(outcome[0])

    limited = PdfPageViewer(timeout_s=2, workers=1)
    try:
        with pytest.raises(RagQAError, match="took longer than 2 s"):
            limited.boxes(str(crafted), file_hash(str(crafted)), 1, disagreeing, 0, 5)
        assert limited.render(str(plain), file_hash(str(plain)), 1, 200).startswith(b"\x89PNG")  # a fresh worker serves the next
    finally:
        limited.close()
