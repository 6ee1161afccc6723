"""The record types that flow through the pipeline: frozen, so no stage mutates another's data."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


@dataclass(frozen=True)
class OcrPage:
    """A scanned page read by OCR: the recognised text and each word's box, so the page view can
    mark answers on the page image (the document's text holds this text, cleaned like any page)."""

    page: int  # 1-based
    text: str  # words joined by spaces, lines by line breaks, paragraphs by blank lines
    words: tuple[tuple[int, int, float, float, float, float], ...]  # [start, end) in `text`; left, top, right, bottom as fractions of the page
    seconds: float = 0.0
    tables_text: str = ""  # `text` with its tables as rows naming their cells (what is indexed); "" when it has none. Not kept

    def to_dict(self) -> dict[str, Any]:
        return {"page": self.page, "text": self.text, "words": [list(w) for w in self.words]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OcrPage":
        return cls(int(data["page"]), data["text"], tuple((int(a), int(b), *map(float, box)) for a, b, *box in data["words"]))  # type: ignore[misc]


@dataclass(frozen=True)
class Document:
    """A loaded file: its cleaned text and, for PDFs, where each page starts in that text."""

    source: str
    text: str
    content_hash: str
    page_starts: tuple[int, ...] = ()  # offset of page 1, 2, ... in `text`; empty when not paged
    groups: tuple[str, ...] | None = None  # access groups; None keeps the index's (none for a new file)
    ocr_pages: tuple[OcrPage, ...] = ()  # the pages read by OCR
    warnings: tuple[str, ...] = ()  # what could not be read although the file was (a scanned page without OCR)
    attachments: tuple["Document", ...] = ()  # a mail's attachments, documents of their own (`mail.eml#name`)
    attached_to: str | None = None  # for an attachment: the mail it came with
    original: bytes | None = field(default=None, repr=False)  # the file's bytes, for a store that keeps them (an upload)

    def with_attachments(self) -> tuple["Document", ...]:
        """This document and its attachments: each is stored as a document of its own."""
        return (self, *self.attachments)

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding character `offset`, or None for unpaged documents."""
        return page_at(self.page_starts, offset)


def page_at(page_starts: Sequence[int], offset: int) -> int | None:
    """The 1-based page number whose text contains `offset` (None when there are no pages)."""
    if not page_starts:
        return None
    return max(1, bisect.bisect_right(page_starts, offset))


def page_breaks(page_starts: Sequence[int], start: int, end: int) -> tuple[int, ...]:
    """Where pages begin inside the document range [start, end), relative to `start`."""
    return tuple(s - start for s in page_starts if start < s < end)


@dataclass(frozen=True)
class Passage:
    """A chunk of a document: `document.text[char_start:char_end] == text`.

    Passages written through the Haystack adapter may have no source file; they are then their
    own document (`char_start == 0`, `char_end == len(text)`).
    """

    id: str
    text: str
    source: str | None = None
    char_start: int = 0
    char_end: int | None = None
    page: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # where later pages begin, as offsets into `text` (derived from the document's page starts)
    page_breaks: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.char_end is None:
            object.__setattr__(self, "char_end", self.char_start + len(self.text))

    def page_at(self, offset: int) -> int | None:
        """The page of character `offset` of this passage's text (None when not paged)."""
        return None if self.page is None else self.page + bisect.bisect_right(self.page_breaks, offset)

    @staticmethod
    def make_id(source: str, char_start: int, text: str) -> str:
        """A content-hash id: the same passage of the same file always gets the same id."""
        digest = hashlib.sha256(f"{source}\0{char_start}\0{text}".encode("utf-8"))
        return digest.hexdigest()[:32]


@dataclass(frozen=True)
class SearchHit:
    """A passage returned by retrieval with its score (higher is better)."""

    passage: Passage
    score: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of `rag-qa search --json` results."""
        p = self.passage
        return {"score": round(self.score, 6), "source": p.source, "page": p.page, "start": p.char_start, "end": p.char_end, "text": p.text}


class Hits(list):  # type: ignore[type-arg]
    """The passages found for one question (SearchHits, best first) with the rarity of each of the
    question's content words among the passages searched (`words.rarity`; empty when unknown). An
    answer whose passages lack the question's rare words is trusted less."""

    def __init__(self, hits: Iterable[SearchHit] = (), word_rarity: Mapping[str, float] | None = None):
        super().__init__(hits)
        self.word_rarity = dict(word_rarity or {})


@dataclass(frozen=True)
class Answer:
    """An extracted answer: `document_text[start:end] == text` for the `source` document (for a
    passage without a source, the offsets are into the passage)."""

    text: str
    score: float
    confidence: float
    source: str | None
    page: int | None
    start: int
    end: int
    passage: Passage
    retrieval_score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "score": round(self.score, 6),
            "confidence": round(self.confidence, 6),
            "source": self.source,
            "page": self.page,
            "start": self.start,
            "end": self.end,
            "passage": {
                "id": self.passage.id,
                "text": self.passage.text,
                "start": self.passage.char_start,
                "end": self.passage.char_end,
                "page": self.passage.page,
            },
        }


@dataclass(frozen=True)
class QAResult:
    """The outcome for one question: ranked answers, or an explicit abstention with its confidence.

    When the system abstains, `answers` still holds the best guesses (for evaluation and for
    showing "closest match" hints); `best` is then None and the JSON form lists no answers."""

    question: str
    answers: tuple[Answer, ...]
    abstained: bool
    no_answer_confidence: float
    margin: float  # max over passages of (best span - null) + tau; >= 0 means "answer"

    @property
    def best(self) -> Answer | None:
        return None if self.abstained or not self.answers else self.answers[0]

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "question": self.question,
            "abstained": self.abstained,
            "no_answer_confidence": round(self.no_answer_confidence, 6),
            "answers": [] if self.abstained else [a.to_dict() for a in self.answers],
        }
        if self.abstained and self.answers:
            result["best_guess"] = self.answers[0].to_dict()
        return result


@dataclass(frozen=True)
class PageBox:
    """A rectangle on a rendered PDF page, as fractions of the page's width and height from its
    top-left corner: multiply by an image's size to draw it (`RagQA.answer_boxes`)."""

    page: int
    left: float
    top: float
    right: float
    bottom: float

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class SourceText:
    """The text that answer and passage offsets of one document index (`rag-qa show`): the whole
    document, or one page of it at `[start, end)` of the document's text."""

    source: str
    text: str
    start: int
    end: int
    page: int | None  # the page shown, or None for the whole document
    pages: int  # pages in the document (0 when it is not paged)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
