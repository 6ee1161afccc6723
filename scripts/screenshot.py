"""Make docs/web-page.png: index the sample documents, serve them, ask a question in headless
Chromium and capture the page. Usage: python scripts/screenshot.py [--reader DIR]"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from rag_qa.config import ReaderConfig, ServerConfig
from rag_qa.pipeline import RagQA
from rag_qa.server.background import live_service

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reader", default=str(REPO.parent / "shared" / "models" / "minilm-squad2-reader-v2"))
    parser.add_argument("--question", default="What is the standard loan period?")
    parser.add_argument("--out", default=str(REPO / "docs" / "web-page.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        with RagQA.open(Path(scratch) / "index", reader=ReaderConfig(model=args.reader)) as qa:
            qa.index([str(REPO / "data")])
            with live_service(qa, ServerConfig(upload_dir=str(Path(scratch) / "uploads"))) as url, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 960, "height": 900})
                page.goto(url)
                page.fill("#question", args.question)
                page.click("#ask-button")
                page.wait_for_selector("#results .card", timeout=60_000)
                page.wait_for_selector("#documents li button")
                page.screenshot(path=args.out, full_page=True)
                browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
