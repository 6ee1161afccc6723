"""Finding passages for questions: dense (FAISS), BM25 (SQLite FTS5) and their fusion, each
passage widened into its neighbours before it is read.

Hybrid ranks by reciprocal rank fusion (robust to the two scores' different scales; no tuning
beyond the usual k = 60) and scores each passage by its cosine similarity to the question plus
its BM25 score relative to the best BM25 hit (`TEXT_MATCH_WEIGHT`), the relevance that answer
ranking and confidence use: cosine alone blurs the rare terms of technical text that BM25 keeps.
Each question also gets the rarity of its words among the passages searched (`Hits`), so that
answer scoring can tell passages that lack the question's rare words. Widening: in a long
document the answer often sits just past the chunk that matched the question (the next sentence,
across a chunk boundary), so the reader reads each passage with up to
`RetrievalConfig.neighbour_chars` of its document on either side, never a text twice
(docs/architecture.md, "Retrieval").
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rag_qa.config import RETRIEVAL_MODES, RetrievalConfig
from rag_qa.embed import Embedder
from rag_qa.ingest.tables import row_line_at
from rag_qa.records import Hits, Passage, SearchHit, page_breaks, page_at
from rag_qa.store import Store
from rag_qa.store.base import MAX_QUERY_TERMS
from rag_qa.table_lookup import best_cell
from rag_qa.words import content_words, rarity

TEXT_MATCH_WEIGHT = 0.5  # a hybrid passage's score: cosine + this x its BM25 score / the best BM25 score (docs/benchmarks.md section 20)


class Retriever:
    """Top passages for a batch of questions, optionally restricted to some source files."""

    def __init__(self, store: Store, embedder: Embedder, config: RetrievalConfig | None = None):
        self.store = store
        self.embedder = embedder
        self.config = config if config is not None else RetrievalConfig()

    def retrieve(
        self, questions: Sequence[str], top_k: int | None = None, sources: Sequence[str] | None = None, mode: str | None = None,
        widen: bool = True,
    ) -> list[Hits]:  # fmt: skip
        """The `top_k` passages for each question by `mode` (default: the configured one), only
        among `sources` when given, widened into their neighbours as the reader reads them (unless
        `widen` is False: the passages as stored, for recall curves), with the rarity of the
        question's words among the passages searched. Every search in rag-qa (ask, search, HTTP,
        Haystack) comes here."""
        ranked = self._ranked(questions, top_k, sources, mode)
        if widen and self.config.neighbour_chars > 0:
            texts = DocumentTexts(self.store)
            ranked = [widen_hits(hits, texts, self.config.neighbour_chars) for hits in ranked]
        return [Hits(hits, self.word_rarity(question, sources)) for question, hits in zip(questions, ranked)]

    def word_rarity(self, question: str, sources: Sequence[str] | None) -> dict[str, float]:
        """Each content word of the question with its rarity (`words.rarity`) among the passages
        of `sources` (all when None): only what the caller may search is counted. The first
        MAX_QUERY_TERMS words, as a full-text search takes them (a long question stays cheap)."""
        words = content_words(question)[:MAX_QUERY_TERMS]
        if not words:
            return {}
        passages, holding = self.store.passage_word_counts(words, sources)
        return {word: rarity(passages, count) for word, count in zip(words, holding)}

    def _ranked(self, questions: Sequence[str], top_k: int | None, sources: Sequence[str] | None, mode: str | None) -> list[list[SearchHit]]:
        top_k = top_k if top_k is not None else self.config.top_k
        mode = mode if mode is not None else self.config.mode
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"retrieval mode must be one of {', '.join(RETRIEVAL_MODES)}, got {mode!r}")
        listed = top_k if mode != "hybrid" else 2 * top_k  # each list's length: what fusion reads
        depth = max(listed, self.config.table_scan_depth)
        vectors = self.embedder.embed(questions) if mode != "bm25" else None
        dense = self.store.search_many(vectors, depth, sources) if vectors is not None else None
        sparse = [self.store.search_text(q, depth, sources) for q in questions] if mode != "dense" else None
        if dense is None or sparse is None:
            found = dense if dense is not None else sparse
            return [[*hits[:top_k], *named_row_hit(q, hits, top_k)] for q, hits in zip(questions, found)]  # type: ignore[arg-type]
        ranked = []
        for question, vector, d, s in zip(questions, vectors, dense, sparse):  # type: ignore[arg-type]
            hits = self._fuse(d[:listed], s[:listed], top_k)
            deeper = self._fuse(d, s, depth) if self.config.table_scan_depth else []  # (2k deep at least: ranks k+1.. are scanned too)
            ranked.append(self._scored(vector, [*hits, *named_row_hit(question, deeper, 0, hits)], d, s, sources))
        return ranked

    def _fuse(self, dense: list[SearchHit], sparse: list[SearchHit], top_k: int) -> list[SearchHit]:
        """The two lists fused with equal weights (a heavier BM25 list read no more answers on either
        corpus measured: benchmarks/fusion_weights.py)."""
        return fuse([dense, sparse], top_k, self.config.rrf_k)

    def _scored(
        self, vector: np.ndarray, hits: list[SearchHit], dense: list[SearchHit], sparse: list[SearchHit], sources: Sequence[str] | None
    ) -> list[SearchHit]:  # fmt: skip
        """Fused hits, in fusion order, each scored by its cosine similarity to the question plus
        `TEXT_MATCH_WEIGHT` x its BM25 score relative to the best BM25 hit: a fusion score says
        only how high a passage ranked in each list (near-equal for the top few), while answer
        ranking needs how well each passage matches the question. Relative BM25 keeps the scale
        of any full-text engine (FTS5's BM25, PostgreSQL's cover density). Passages that only
        BM25 found are looked up among themselves (a dense search restricted to them); a passage
        below the BM25 list gets the list's lowest score."""
        similarity = {h.passage.id: h.score for h in dense}
        missing = [h.passage.id for h in hits if h.passage.id not in similarity]
        if missing:
            found = self.store.search_many(vector[None, :], len(missing), sources, ids=missing)[0]
            similarity.update((h.passage.id, h.score) for h in found)
        text_match = {h.passage.id: h.score for h in sparse}
        best, lowest = (sparse[0].score, sparse[-1].score) if sparse else (0.0, 0.0)
        relative = {pid: text_match.get(pid, lowest) / best if best > 0 else 0.0 for pid in (h.passage.id for h in hits)}
        return [SearchHit(h.passage, similarity.get(h.passage.id, -1.0) + TEXT_MATCH_WEIGHT * relative[h.passage.id]) for h in hits]


def named_row_hit(question: str, candidates: Sequence[SearchHit], top_k: int, read: Sequence[SearchHit] = ()) -> list[SearchHit]:
    """The candidate holding the table row a question names with the column it asks for, or
    quotes (`table_lookup.best_cell`), when neither the first `top_k` candidates nor `read` hold
    it: a person who does not find the row among the first results scans the table for it. The
    row passage is read besides the top passages, never instead of one ([] when none)."""
    cell = best_cell(question, [hit.passage.text for hit in candidates], [{} for _ in candidates])
    if cell is None or cell.passage < top_k or not (cell.strong or cell.quoted):
        return []
    hit = candidates[cell.passage]
    return [] if any(other.passage.id == hit.passage.id for other in read) else [hit]


def fuse(rankings: Sequence[Sequence[SearchHit]], top_k: int, k: int = 60, weights: Sequence[float] | None = None) -> list[SearchHit]:
    """Reciprocal rank fusion: score = sum over rankings of weight / (k + rank) (weights 1 unless given)."""
    scores: dict[str, float] = {}
    passages = {}
    for ranking, weight in zip(rankings, weights if weights is not None else [1.0] * len(rankings), strict=True):
        for rank, hit in enumerate(ranking, 1):
            scores[hit.passage.id] = scores.get(hit.passage.id, 0.0) + weight / (k + rank)
            passages[hit.passage.id] = hit.passage
    ordered = sorted(scores, key=lambda pid: -scores[pid])[:top_k]
    return [SearchHit(passages[pid], scores[pid]) for pid in ordered]


class DocumentTexts:
    """Documents' texts and page starts, each read from the store once per retrieval."""

    def __init__(self, store: Store):
        self.store = store
        self._texts: dict[str, tuple[str | None, tuple[int, ...]]] = {}

    def get(self, source: str) -> tuple[str | None, tuple[int, ...]]:
        if source not in self._texts:
            text = self.store.document_text(source)
            self._texts[source] = (text, self.store.page_starts(source) if text is not None else ())
        return self._texts[source]


def widen_hits(hits: Sequence[SearchHit], texts: DocumentTexts, chars: int) -> list[SearchHit]:
    """Each hit's passage with up to `chars` characters of its document on either side (cut at a
    sentence or word boundary), in rank order, less the text a hit ranked above already reads: no
    text is read twice, and no passage grows past one reader window's worth (joining overlapping
    passages into one long one made the reader less sure of answers it found in either). A hit
    whose text is all read above is dropped. A passage whose document text is not kept (a
    Haystack-written passage, an index from before the text was kept) stays as it is."""
    taken: dict[str, list[tuple[int, int]]] = {}
    widened = []
    for hit in hits:
        passage = hit.passage
        text, page_starts = texts.get(passage.source) if passage.source is not None else (None, ())
        if text is None or text[passage.char_start : passage.char_end] != passage.text:
            widened.append(hit)
            continue
        start, end = widened_range(text, passage.char_start, passage.char_end, chars, _page_start(page_starts, passage.char_start))
        rest = _unread_part(start, end, passage.char_start, passage.char_end, taken.setdefault(passage.source, []))  # type: ignore[arg-type]
        if rest is not None:
            taken[passage.source].append(rest)  # type: ignore[index]
            widened.append(_with_range(hit, *rest, text, page_starts))
    return widened


def _unread_part(start: int, end: int, passage_start: int, passage_end: int, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The largest stretch of [start, end) outside the `taken` ranges that overlaps the passage
    itself [passage_start, passage_end), or None when the passage is all taken."""
    pieces = [(start, end)]
    for low, high in taken:
        pieces = [part for a, b in pieces for part in ((a, min(b, low)), (max(a, high), b)) if part[0] < part[1]]
    pieces = [(a, b) for a, b in pieces if a < passage_end and passage_start < b]
    return max(pieces, key=lambda piece: piece[1] - piece[0], default=None)


def _page_start(page_starts: Sequence[int], offset: int) -> int:
    """Where the page holding `offset` begins (0 for an unpaged document)."""
    return page_starts[bisect.bisect_right(page_starts, offset) - 1] if page_starts and offset >= page_starts[0] else 0


def widened_range(text: str, start: int, end: int, chars: int, floor: int = 0) -> tuple[int, int]:
    """[start, end) grown by at most `chars` on each side: from the first sentence that begins in
    the added text before (else the first whole word), never before `floor` (the passage's page
    start: a passage is cited by the page it begins on, so it does not reach back onto the page
    before), to the last sentence that ends in the added text after (else the last whole word)."""
    low, high = max(floor, start - chars), min(len(text), end + chars)
    if low > floor:
        before = text[low:start]
        sentence = _SENTENCE_END.search(before)
        word = _SPACE.search(before)
        low = low + sentence.end() if sentence else low + word.end() if word else start
    if high < len(text):
        after = text[end:high]
        sentences = [m.end(1) for m in _SENTENCE_END.finditer(after)]
        spaces = [m.start() for m in _SPACE.finditer(after)]
        high = end + (sentences[-1] if sentences else spaces[-1] if spaces else 0)
    return min(_past_row(text, low), start), max(_before_row(text, high), end)


def _past_row(text: str, low: int) -> int:
    """`low`, or the start of the next line when `low` falls inside a table row: a row read
    without the cells that name it ("0; Meaning: …" of "Command: \\farcm; Output: . 0; …")
    answers for a row it is not."""
    row = row_line_at(text, low) if low < len(text) else None
    return row[1] + 1 if row is not None and row[0] < low else low


def _before_row(text: str, high: int) -> int:
    """`high`, or the end of the line before when `high` falls inside a table row."""
    row = row_line_at(text, high) if high > 0 else None
    return row[0] - 1 if row is not None and row[0] < high < row[1] else high


_SENTENCE_END = re.compile(r"([.!?][\"')\]]?)\s+")
_SPACE = re.compile(r"\s+")


def _with_range(hit: SearchHit, start: int, end: int, text: str, page_starts: tuple[int, ...]) -> SearchHit:
    passage = hit.passage
    if (start, end) == (passage.char_start, passage.char_end):
        return hit
    wider = Passage(passage.id, text[start:end], passage.source, start, end, page_at(page_starts, start), passage.meta, page_breaks=page_breaks(page_starts, start, end))
    return replace(hit, passage=wider)
