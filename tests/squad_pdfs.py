"""Real multi-page PDFs built from the shared SQuAD paragraphs: one article per PDF, two paragraphs
per page, so tests know which page each paragraph (and so each answer) is on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
PARAGRAPHS_PER_PAGE = 2


@dataclass(frozen=True)
class Article:
    title: str
    paragraphs: list[str]
    questions: list[dict]  # SQuAD qas of each paragraph, with "paragraph" index added


def load_articles(squad_file: Path) -> list[Article]:
    data = json.loads(squad_file.read_text("utf-8"))["data"]
    articles = []
    for article in data:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        questions = [dict(q, paragraph=i) for i, p in enumerate(article["paragraphs"]) for q in p["qas"]]
        articles.append(Article(article["title"], paragraphs, questions))
    return articles


def page_of(paragraph: int) -> int:
    return paragraph // PARAGRAPHS_PER_PAGE + 1


def write_pdf(article: Article, target: Path) -> Path:
    pdf = FPDF(format="A4")
    if FONT.exists():
        pdf.add_font("body", "", str(FONT))
        font, encode = "body", lambda s: s
    else:  # core fonts are latin-1 only
        font, encode = "Helvetica", lambda s: s.encode("latin-1", "replace").decode("latin-1")
    for start in range(0, len(article.paragraphs), PARAGRAPHS_PER_PAGE):
        pdf.add_page()
        pdf.set_font(font, size=10)
        for paragraph in article.paragraphs[start : start + PARAGRAPHS_PER_PAGE]:
            pdf.multi_cell(0, 5, encode(paragraph))
            pdf.ln(4)
    pdf.output(str(target))
    return target


def build_corpus(squad_file: Path, folder: Path, limit: int | None = None) -> list[tuple[Article, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    articles = load_articles(squad_file)[:limit]
    return [(a, write_pdf(a, folder / f"{a.title}.pdf")) for a in articles]
