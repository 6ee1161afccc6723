"""Finding passages for questions: dense (FAISS), BM25 (SQLite FTS5) and their fusion.

Hybrid uses reciprocal rank fusion: robust to the two scores' different scales, and it needs no
tuning beyond the usual k = 60.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag_qa.config import RETRIEVAL_MODES, RetrievalConfig
from rag_qa.embed import Embedder
from rag_qa.records import SearchHit
from rag_qa.store import Store


class Retriever:
    """Top passages for a batch of questions, optionally restricted to some source files."""

    def __init__(self, store: Store, embedder: Embedder, config: RetrievalConfig | None = None):
        self.store = store
        self.embedder = embedder
        self.config = config if config is not None else RetrievalConfig()

    def retrieve(
        self, questions: Sequence[str], top_k: int | None = None, sources: Sequence[str] | None = None, mode: str | None = None
    ) -> list[list[SearchHit]]:
        """The `top_k` passages for each question by `mode` (default: the configured one), only
        among `sources` when given. Every search in rag-qa (ask, search, HTTP, Haystack) comes here."""
        top_k = top_k if top_k is not None else self.config.top_k
        mode = mode if mode is not None else self.config.mode
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"retrieval mode must be one of {', '.join(RETRIEVAL_MODES)}, got {mode!r}")
        dense = self._dense(questions, top_k if mode == "dense" else 2 * top_k, sources) if mode != "bm25" else None
        sparse = [self._bm25(q, top_k if mode == "bm25" else 2 * top_k, sources) for q in questions] if mode != "dense" else None
        if dense is None:
            return sparse  # type: ignore[return-value]
        if sparse is None:
            return dense
        return [fuse([d, s], top_k, self.config.rrf_k) for d, s in zip(dense, sparse)]

    def _dense(self, questions: Sequence[str], top_k: int, sources: Sequence[str] | None) -> list[list[SearchHit]]:
        return self.store.search_many(self.embedder.embed(questions), top_k, sources)

    def _bm25(self, question: str, top_k: int, sources: Sequence[str] | None) -> list[SearchHit]:
        return self.store.search_text(question, top_k, sources)


def fuse(rankings: Sequence[Sequence[SearchHit]], top_k: int, k: int = 60) -> list[SearchHit]:
    """Reciprocal rank fusion: score = sum over rankings of 1 / (k + rank)."""
    scores: dict[str, float] = {}
    passages = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, 1):
            scores[hit.passage.id] = scores.get(hit.passage.id, 0.0) + 1.0 / (k + rank)
            passages[hit.passage.id] = hit.passage
    ordered = sorted(scores, key=lambda pid: -scores[pid])[:top_k]
    return [SearchHit(passages[pid], scores[pid]) for pid in ordered]
