"""The web page end to end in a real headless Chromium (Playwright): upload a document, ask a
question, see the answer highlighted in its passage with source and confidence; and the plain
no-answer case."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag_qa.config import ReaderConfig, ServerConfig
from rag_qa.pipeline import RagQA
from helpers import READER, REPO, needs_shared
from rag_qa.server.background import live_service

pytestmark = pytest.mark.integration
CHROMIUM = os.environ.get("RAG_QA_CHROMIUM", "/usr/bin/chromium")
DOCUMENT = (
    "Harborview Tool Library: borrowing rules\n\n"
    "The standard loan period is seven days. A loan can be renewed once online if nobody else has reserved the tool. "
    "Late returns cost two dollars per day. Members must wear safety glasses when using the workshop."
)


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium chromium-driver, or set RAG_QA_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


def test_upload_ask_and_see_the_highlighted_answer(browser, tmp_path: Path) -> None:
    needs_shared(READER)
    document = tmp_path / "rules.txt"
    document.write_text(DOCUMENT)
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=str(READER))) as qa, live_service(qa, ServerConfig(upload_dir=str(tmp_path / "uploads"))) as url:
        page = browser.new_page()
        page.goto(url)
        page.get_by_text("No documents yet").wait_for()
        assert page.is_hidden("#key-form")  # an open service asks for no key

        page.set_input_files("#files", str(document))
        page.click("#upload-button")
        page.get_by_text("1 indexed").wait_for(timeout=60_000)
        assert "rules.txt" in page.inner_text("#documents")  # the page refreshes its list before it reports the upload
        dialogs: list[str] = []
        page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        document.write_text(DOCUMENT + " The workshop opens at noon.")
        page.set_input_files("#files", str(document))
        page.click("#upload-button")  # the same name again: the page asks before replacing
        def rules() -> list[str]:  # the texts of the uploads named rules.txt (each upload has a folder of its own)
            return [qa.store.document_text(f["source"]) or "" for f in qa.store.files() if Path(f["source"]).name == "rules.txt"]

        for _ in range(600):
            if "opens at noon" in "".join(rules()):
                break
            page.wait_for_timeout(100)
        assert len(rules()) == 1 and "opens at noon" in rules()[0] and "replace=true" in dialogs[0]

        page.fill("#question", "What is the standard loan period?")
        page.click("#ask-button")
        page.wait_for_selector("#results .answer mark", timeout=60_000)
        assert page.inner_text("#results .answer mark") == page.inner_text("#results .answer .answer-text") == "seven days"
        meta = page.inner_text("#results .answer .meta")
        assert "rules.txt" in meta and "confidence" in meta
        assert "The standard loan period is seven days." in page.inner_text("#results .evidence")

        page.fill("#question", "Who won the football world cup in 1954?")
        page.click("#ask-button")
        page.wait_for_selector("#results .no-answer", timeout=60_000)
        assert "No answer in your documents" in page.inner_text("#results")

        page.fill("#question", "x" * 1500)  # the box stops at the limit; the API would refuse more
        assert len(page.input_value("#question")) == 1000

        page.click("#documents button")  # Remove
        page.get_by_text("No documents yet").wait_for()
        assert qa.store.count() == 0
        page.close()


def _union(rects: list[dict]) -> dict:
    return {
        "left": min(r["left"] for r in rects), "top": min(r["top"] for r in rects),
        "right": max(r["right"] for r in rects), "bottom": max(r["bottom"] for r in rects),
    }  # fmt: skip


def _library_boxes(pdf_path: Path, page_number: int, text: str) -> dict:
    """Where pdfium itself finds `text` on the page, as fractions of the page (top-left origin)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_path))
    page = pdf[page_number - 1]
    text_page = page.get_textpage()
    index, count = text_page.search(text, match_case=True).get_next()
    width, height = page.get_size()
    boxes = [text_page.get_charbox(i) for i in range(index, index + count)]
    pdf.close()
    return _union([{"left": l / width, "top": 1 - t / height, "right": r / width, "bottom": 1 - b / height} for l, b, r, t in boxes])


def _overlap(a: dict, b: dict, axis: tuple[str, str]) -> float:
    low, high = axis
    return max(0.0, min(a[high], b[high]) - max(a[low], b[low])) / (b[high] - b[low])


def test_pdf_answer_is_marked_on_its_rendered_page(browser, tmp_path: Path) -> None:
    """Upload the six-page sample PDF, ask a question answered on page 2, and check that the
    highlight on the rendered page covers the answer's words where pdfium finds them."""
    needs_shared(READER)
    pdf = REPO / "data" / "safety-guide.pdf"
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=str(READER))) as qa, live_service(qa, ServerConfig(upload_dir=str(tmp_path / "uploads"))) as url:
        page = browser.new_page(viewport={"width": 960, "height": 1000})
        page.goto(url)
        page.set_input_files("#files", str(pdf))
        page.click("#upload-button")
        page.get_by_text("1 indexed").wait_for(timeout=60_000)
        page.fill("#question", "How long does a fully charged drill battery last?")
        page.click("#ask-button")
        page.wait_for_selector("#results .answer .highlight", timeout=60_000)
        page.wait_for_function("document.querySelector('#results .page img').complete && document.querySelector('#results .page img').naturalWidth > 0")
        answer = page.inner_text("#results .answer .answer-text")
        label = page.inner_text("#results .page-label")
        assert answer == "about forty minutes" and label == "Page 2 of 6", (answer, label)

        def on_screen(selector: str) -> list[dict]:
            return page.eval_on_selector_all(selector, "els => els.map(e => { const r = e.getBoundingClientRect(); return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; })")

        for zoom in ("100%", "150%"):
            image = on_screen("#results .page img")[0]
            size = {"left": image["right"] - image["left"], "top": image["bottom"] - image["top"]}
            expected = {k: image["left" if k in ("left", "right") else "top"] + v * size["left" if k in ("left", "right") else "top"] for k, v in _library_boxes(pdf, 2, answer).items()}
            marked = _union(on_screen("#results .highlight"))
            assert _overlap(marked, expected, ("left", "right")) > 0.95 and _overlap(marked, expected, ("top", "bottom")) > 0.95, (zoom, marked, expected)
            assert marked["right"] - marked["left"] < 1.3 * (expected["right"] - expected["left"]), "the mark covers the answer, not the line"
            assert page.inner_text("#results .zoom-label") == zoom
            if zoom == "100%":
                (tmp_path / "shot.png").write_bytes(page.screenshot(full_page=True))
                if os.environ.get("RAG_QA_UPDATE_SCREENSHOTS") == "1":
                    page.locator("#results .answer").first.screenshot(path=str(REPO / "docs" / "pdf-answer.png"))
                page.click("[aria-label='zoom in']")
                page.wait_for_function("document.querySelector('#results .page img').complete")

        page.click("[aria-label='next page']")
        page.get_by_text("Page 3 of 6").wait_for()
        assert page.locator("#results .highlight").count() == 0
        page.click("[aria-label='previous page']")
        page.get_by_text("Page 2 of 6").wait_for()
        assert page.locator("#results .highlight").count() >= 1
        page.close()


def test_a_keyed_service_asks_for_a_key_once_and_a_foreign_form_cannot_upload(browser, tmp_path: Path) -> None:
    """The page asks for the key when the service wants one, keeps it for the tab (a reload does not
    ask again), and shows the PDF page fetched with it. A form on another site posting to an open
    service is refused: it cannot send the bearer header."""
    needs_shared(READER)
    from rag_qa.keys import KeyRing

    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=str(READER))) as qa:
        qa.index([REPO / "data" / "safety-guide.pdf"])
        with live_service(qa, ServerConfig(upload_dir=str(tmp_path / "uploads"))) as url:  # open: no keys yet
            foreign = browser.new_page()
            foreign.set_content(
                f'<form method="post" enctype="multipart/form-data" action="{url}/documents">'
                '<input type="file" name="files" id="f"><button id="go">go</button></form>'
            )
            foreign.set_input_files("#f", {"name": "planted.txt", "mimeType": "text/plain", "buffer": b"Planted by another site."})
            with foreign.expect_navigation():
                foreign.click("#go")
            assert "Authorization: Bearer" in foreign.content() and not any(Path(f["source"]).name == "planted.txt" for f in qa.store.files())
            foreign.close()
            _, token = KeyRing(qa.store).create("reader", name="browser")
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#key-form", state="visible")
            assert "needs an API key" in page.inner_text("#results")
            page.fill("#api-key", token)
            page.click("#key-form button")
            page.get_by_text("safety-guide.pdf").wait_for()
            page.reload()
            page.get_by_text("safety-guide.pdf").wait_for()  # the key is kept for the tab
            assert page.is_hidden("#key-form")
            page.fill("#question", "How long does a fully charged drill battery last?")
            page.click("#ask-button")
            page.wait_for_selector("#results .answer .highlight", timeout=60_000)
            page.wait_for_function("document.querySelector('#results .page img').naturalWidth > 0")  # fetched with the key
            page.close()
