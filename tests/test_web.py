"""The web page end to end in a real headless Chromium (Playwright): upload a document, ask a
question, see the answer highlighted in its passage with source and confidence; and the plain
no-answer case."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag_qa.config import ReaderConfig, ServerConfig
from rag_qa.pipeline import RagQA
from helpers import READER, needs_shared
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

        page.set_input_files("#files", str(document))
        page.click("#upload-button")
        page.get_by_text("1 indexed").wait_for(timeout=60_000)
        assert "rules.txt" in page.inner_text("#documents")

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
