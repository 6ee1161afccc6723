"""Reading SQuAD-format files faithfully, for evaluation: every paragraph a document with a name
of its own, every question with its gold answers and where they are.

Names do not rely on titles, which may be missing or repeated: a paragraph is
`squad:FILE/ARTICLE/PARAGRAPH (TITLE)` (FILE the file's name without its extension, ARTICLE and
PARAGRAPH positions from 0, the title when there is one). Which document and passage hold a
question's answer is decided by content (the paragraph's text and the answer's offsets in it), so
evaluation does not depend on names at all.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_qa.errors import LoadError
from rag_qa.records import Document

SHOWN_MISMATCHES = 5  # examples of answers not found at their answer_start, in reports


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]  # gold texts; empty for unanswerable questions
    title: str
    paragraph: int
    article: int = 0
    answer_starts: tuple[int | None, ...] = ()  # each gold answer's offset in the context (None: not found there)
    source: str = ""  # the name of its paragraph's document

    @property
    def has_answer(self) -> bool:
        return bool(self.answers)

    @property
    def context_hash(self) -> str:
        """The content hash of the paragraph's document (what names the right document)."""
        return content_hash(self.context)

    def answer_spans(self) -> list[tuple[int, int]]:
        """Character spans of the gold answers in the context (those found at their answer_start)."""
        return [(s, s + len(a)) for a, s in zip(self.answers, self.answer_starts) if s is not None]


@dataclass
class SquadFile:
    """The questions and paragraphs of one file, and the answers that were not at their `answer_start`."""

    questions: list[SquadQuestion]
    paragraphs: dict[str, str] = field(default_factory=dict)  # name -> context, every paragraph (with questions or not)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    answers: int = 0


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def paragraph_name(stem: str, article: int, paragraph: int, title: str = "") -> str:
    """The document name of a SQuAD paragraph (see the module's docstring)."""
    return f"squad:{stem}/{article}/{paragraph}" + (f" ({title})" if title else "")


def read_squad(path: str | Path) -> SquadFile:
    """Every question of a SQuAD 1.1/2.0 file with its paragraph's name, and a report of gold
    answers whose text is not the context at their `answer_start` (kept as gold texts for EM/F1,
    left out of passage-level recall, which needs their place)."""
    path = Path(path)
    try:
        articles = json.loads(path.read_text("utf-8"))["data"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LoadError(str(path), f"not a SQuAD JSON file ({type(exc).__name__}: {exc})") from exc
    found = SquadFile([])
    for article_index, article in enumerate(articles):
        title = str(article.get("title") or "")
        for paragraph_index, paragraph in enumerate(article["paragraphs"]):
            context, name = paragraph["context"], paragraph_name(path.stem, article_index, paragraph_index, title)
            found.paragraphs[name] = context
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                starts = tuple(_checked_start(qa["id"], a, context, found) for a in answers)
                found.questions.append(SquadQuestion(
                    qa["id"], qa["question"], context, tuple(a["text"] for a in answers), title, paragraph_index, article_index, starts, name,
                ))  # fmt: skip
    return found


def _checked_start(question_id: str, answer: dict[str, Any], context: str, found: SquadFile) -> int | None:
    found.answers += 1
    start, text = answer.get("answer_start"), answer["text"]
    if isinstance(start, int) and context[start : start + len(text)] == text:
        return start
    found.mismatched.append({"id": question_id, "answer": text, "answer_start": start, "context_there": context[start : start + len(text)] if isinstance(start, int) else None})
    return None


def load_squad(path: str | Path) -> list[SquadQuestion]:
    """Every question of a SQuAD 1.1/2.0 file, with its paragraph."""
    return read_squad(path).questions


def sample_questions(questions: Sequence[SquadQuestion], count: int | None, seed: int = 0) -> list[SquadQuestion]:
    """`count` questions drawn with `seed` (in file order), or all of them."""
    if count is None or count >= len(questions):
        return list(questions)
    chosen = set(random.Random(seed).sample(range(len(questions)), count))
    return [q for i, q in enumerate(questions) if i in chosen]


def squad_corpus(files: Sequence[str | Path], paragraph_files: Sequence[str | Path] = ()) -> list[Document]:
    """Every paragraph of SQuAD JSON files, plus JSONL paragraph files ({"title", "paragraph",
    "text"} per line; a title's articles numbered in order of first appearance), as documents. A
    paragraph whose text is already in the corpus is indexed once. Two different paragraphs that
    would get one name (two files of the same name) are refused."""
    documents: dict[str, Document] = {}
    seen_texts: set[str] = set()

    def add(name: str, text: str, where: Path) -> None:
        if name in documents and documents[name].text != text:
            raise LoadError(str(where), f"two different paragraphs would both be named {name!r}: give the files distinct names")
        if text not in seen_texts:
            seen_texts.add(text)
            documents.setdefault(name, Document(source=name, text=text, content_hash=content_hash(text)))

    for file in map(Path, files):
        for name, context in read_squad(file).paragraphs.items():
            add(name, context, file)
    for file in map(Path, paragraph_files):
        articles: dict[str, int] = {}
        for line in file.read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                article = articles.setdefault(row["title"], len(articles))
                add(paragraph_name(file.stem, article, row["paragraph"], row["title"]), row["text"], file)
    return list(documents.values())
