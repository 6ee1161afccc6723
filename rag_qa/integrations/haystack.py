"""Haystack 3 integration: rag-qa's stores (crash-safe FAISS + SQLite, or PostgreSQL + pgvector) as a Haystack `DocumentStore`
with an embedding retriever, our span reader as a component, and ready-made indexing and query
pipelines. Thin wrappers over the same code the rag-qa CLI runs, so an index built by
`rag-qa index` can be searched from a Haystack pipeline and vice versa.

    >>> from rag_qa.integrations.haystack import RagQADocumentStore, RagQAEmbeddingRetriever
    >>> store = RagQADocumentStore("indexes/haystack", embedding_dim=384)
    >>> retriever = RagQAEmbeddingRetriever(store, top_k=5)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from haystack import Document, Pipeline, component, default_from_dict, default_to_dict
from haystack.dataclasses import ByteStream, ExtractedAnswer, SparseEmbedding
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.utils.filters import document_matches_filter

from rag_qa.access import readable_sources
from rag_qa.answer import combine
from rag_qa.config import (
    DEFAULT_READER_MODEL,
    DEFAULT_READER_REVISION,
    DEFAULT_RETRIEVAL_MODE,
    DEFAULT_RETRIEVAL_TEMPERATURE,
    EmbedderConfig,
    IndexSettings,
    ReaderConfig,
    RetrievalConfig,
    ScoringConfig,
    VectorIndexConfig,
)
from rag_qa.keys import check_groups
from rag_qa.naming import resolve_sources
from rag_qa.pipeline import RagQA
from rag_qa.precision import chosen_precision
from rag_qa.reader import Reader
from rag_qa.records import Answer, Hits, Passage, SearchHit
from rag_qa.store import DuplicatePassageError, open_store

LOG = logging.getLogger(__name__)

# Haystack fields with no column of their own travel inside the metadata under this key.
EXTRAS_KEY = "__haystack__"
SOURCE_FIELDS = ("source", "page", "char_start", "char_end")
POLICIES = MappingProxyType({  # read-only
    DuplicatePolicy.NONE: "fail",
    DuplicatePolicy.FAIL: "fail",
    DuplicatePolicy.SKIP: "skip",
    DuplicatePolicy.OVERWRITE: "overwrite",
})


def to_passage(document: Document) -> Passage:
    """A Haystack Document as a stored passage (its own document: no source file)."""
    extras: dict[str, Any] = {}
    if document.content is None:
        extras["content_is_none"] = True
    if document.blob is not None:
        extras["blob"] = document.blob.to_dict()
    if document.sparse_embedding is not None:
        extras["sparse_embedding"] = document.sparse_embedding.to_dict()
    meta = {**document.meta, EXTRAS_KEY: extras} if extras else dict(document.meta)
    return Passage(id=document.id, text=document.content or "", meta=meta)


def to_document(passage: Passage, embedding: Any = None, score: float | None = None) -> Document:
    """A stored passage as a Haystack Document; passages of indexed files carry their source,
    page and character offsets in `meta`."""
    meta = dict(passage.meta)
    extras = meta.pop(EXTRAS_KEY, {})
    if passage.source is not None:
        located = dict(zip(SOURCE_FIELDS, (passage.source, passage.page, passage.char_start, passage.char_end)))
        if passage.page_breaks:  # lets a reader give the page of an answer on a later page
            located["page_breaks"] = list(passage.page_breaks)
        meta = {**located, **meta}
    return Document(
        id=passage.id,
        content=None if extras.get("content_is_none") else passage.text,
        blob=ByteStream.from_dict(extras["blob"]) if "blob" in extras else None,
        sparse_embedding=SparseEmbedding.from_dict(extras["sparse_embedding"]) if "sparse_embedding" in extras else None,
        meta=meta,
        embedding=None if embedding is None else embedding.tolist(),
        score=score,
    )


def checked_groups(groups: Sequence[str] | None) -> list[str] | None:
    """A retriever's groups, checked when it is built (a name that cannot be a group fails there, not at run time)."""
    return list(check_groups(groups)) if groups is not None else None


def readable_by_both(
    readable: Callable[[Sequence[str]], list[str] | None], built: Sequence[str] | None, asked: Sequence[str] | None
) -> list[str] | None:
    """The stored names a retriever built for groups `built` may read when run for groups `asked`:
    those both may read (None: no limit at all). Run-time groups narrow a retriever, never widen
    it: a pipeline built for `hr` and run for `legal` reads only what `hr` and `legal` both may."""
    allowed: list[str] | None = None
    for groups in (built, asked):
        if groups is not None:
            visible = readable(check_groups(groups)) or []  # (None would mean every document: refuse it)
            shown = set(visible)
            allowed = visible if allowed is None else [s for s in allowed if s in shown]
    return allowed


def _validate_filters(filters: dict[str, Any] | None) -> None:
    if filters and "operator" not in filters and "conditions" not in filters:
        raise FilterError("Invalid filter syntax: a filter needs 'operator' and either 'conditions' or 'field'/'value'.")


class RagQADocumentStore:
    """Haystack `DocumentStore` over a rag-qa index: a folder (FAISS + SQLite, crash-safe) or a
    `postgresql://…[#name]` URL (PostgreSQL + pgvector).

    `embedding_dim` is checked against an existing index, or fixed by the first embedding written
    when None. Filters use Haystack's filter syntax over `meta` (plus `id` and `content`).
    """

    def __init__(self, path: str, embedding_dim: int | None = None, embedding_model: str | None = None, index_type: str = "auto"):
        self.path = str(path)
        self.embedding_dim = embedding_dim
        self.embedding_model = embedding_model
        self.index_type = index_type
        new_settings = IndexSettings(  # only for a new index: an existing one keeps its own
            embedder=EmbedderConfig(model=embedding_model or "unspecified (written through Haystack)", revision=None),
            vector_index=VectorIndexConfig(index_type=index_type),
        )
        self.store = open_store(path, dimension=embedding_dim, new_settings=new_settings)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, path=self.path, embedding_dim=self.embedding_dim, embedding_model=self.embedding_model, index_type=self.index_type
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RagQADocumentStore":
        return default_from_dict(cls, data)

    def close(self) -> None:
        self.store.close()

    def count_documents(self) -> int:
        return self.store.count()

    def _all(self) -> Iterable[Document]:
        for passage, embedding in self.store.iter_passages():
            yield to_document(passage, embedding)

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """Documents matching `filters` (all when None or empty), in insertion order."""
        _validate_filters(filters)
        if not filters:
            return list(self._all())
        return [doc for doc in self._all() if document_matches_filter(filters=filters, document=doc)]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Write documents atomically; `DuplicatePolicy.NONE` means FAIL (nothing is written then)."""
        if not isinstance(documents, list) or any(not isinstance(d, Document) for d in documents):
            raise ValueError("write_documents expects a list of haystack Document objects")
        try:
            return self.store.write([to_passage(d) for d in documents], [d.embedding for d in documents], POLICIES[policy])
        except DuplicatePassageError as exc:
            raise DuplicateDocumentError(str(exc)) from None

    def delete_documents(self, document_ids: list[str]) -> None:
        self.store.delete_ids(document_ids)

    def delete_all_documents(self, recreate_index: bool = False) -> None:
        """Remove every document. With `recreate_index`, a FAISS file is also rewritten empty
        now rather than at the next save."""
        self.store.clear()
        if recreate_index:
            self.store.flush()

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Delete the documents matching `filters`; returns how many were deleted."""
        return self.store.delete_ids([d.id for d in self.filter_documents(filters)])

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """Merge `meta` into the metadata of every matching document; returns how many changed."""
        _validate_filters(filters)
        updates = {
            passage.id: {**passage.meta, **meta}
            for passage, embedding in self.store.iter_passages()
            if document_matches_filter(filters=filters, document=to_document(passage, embedding))
        }
        return self.store.update_meta(updates)

    def embedding_retrieval(
        self, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int = 10, sources: Sequence[str] | None = None
    ) -> list[Document]:
        """The `top_k` documents with the highest inner product with `query_embedding`, only from
        the indexed files `sources` when given (a retriever's groups; the store filters inside its
        search, and documents written through Haystack belong to no file)."""
        import numpy as np

        ids = [d.id for d in self.filter_documents(filters)] if filters else None
        hits = self.store.search(np.asarray(query_embedding, dtype=np.float32), top_k, sources=sources, ids=ids)
        return [to_document(hit.passage, score=hit.score) for hit in hits]


@component
class RagQAEmbeddingRetriever:
    """Retrieves documents from a `RagQADocumentStore` by embedding similarity; with `groups`, only
    from indexed files a holder of those groups may read (as `PassageRetriever`), so not from
    documents written through Haystack, which belong to no file."""

    def __init__(
        self, document_store: RagQADocumentStore, filters: dict[str, Any] | None = None, top_k: int = 10, groups: list[str] | None = None
    ):
        if not isinstance(document_store, RagQADocumentStore):
            raise ValueError("document_store must be a rag_qa RagQADocumentStore")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k
        self.groups = checked_groups(groups)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, document_store=self.document_store.to_dict(), filters=self.filters, top_k=self.top_k, groups=self.groups)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RagQAEmbeddingRetriever":
        data["init_parameters"]["document_store"] = RagQADocumentStore.from_dict(data["init_parameters"]["document_store"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(
        self, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int | None = None, groups: list[str] | None = None
    ) -> dict[str, Any]:
        """`groups` narrows the constructor's groups (only what both may read), never widens them."""
        return {
            "documents": self.document_store.embedding_retrieval(
                query_embedding,
                filters=filters if filters is not None else self.filters,
                top_k=top_k if top_k is not None else self.top_k,
                sources=readable_by_both(functools.partial(readable_sources, self.document_store.store), self.groups, groups),
            )
        }


# ----------------------------------------------------------------------------- question answering
WORD_RARITY_META = "question_word_rarity"  # PassageRetriever -> SpanReader: each question word's rarity among the passages searched


def _passage_of(document: Document) -> Passage:
    """A retrieved Haystack document as a passage; offsets into its source when the meta has them."""
    meta = document.meta
    if isinstance(meta.get("source"), str) and isinstance(meta.get("char_start"), int):
        breaks = tuple(meta.get("page_breaks", ()))
        return Passage(document.id, document.content or "", meta["source"], meta["char_start"], meta.get("char_end"), meta.get("page"), page_breaks=breaks)
    return Passage(document.id, document.content or "")


@component
class SpanReader:
    """rag-qa's span reader and answer scoring as a Haystack component.

    Input: the query and retrieved documents (their `score` is the retrieval score). Output:
    `ExtractedAnswer`s ranked by confidence, always ending with the no-answer (`data=None`) and
    its own probability; when rag-qa abstains the no-answer is the only one. Offsets are into
    each document's content, and `meta` carries the source file, page and offsets into the
    source when the documents came from a rag-qa index.
    """

    def __init__(
        self,
        model: str = DEFAULT_READER_MODEL,
        revision: str | None = DEFAULT_READER_REVISION,
        top_k: int = 5,
        tau: float = 0.0,
        retrieval_weight: float = 0.5,
        retrieval_temperature: float = DEFAULT_RETRIEVAL_TEMPERATURE[DEFAULT_RETRIEVAL_MODE],
        runtime: str = "auto",
        int8: bool = False,
        scoring: dict[str, Any] | None = None,
        bf16: bool = False,
    ):
        """`scoring`, a whole `ScoringConfig.to_dict()` (e.g. the fit `rag-qa calibrate` saved with
        an index, as `query_pipeline` passes), replaces tau, the retrieval weight and temperature.
        `int8` or `bf16` set the precision as `--precision` does (bf16 only where the processor
        has native bf16 instructions, else fp32 with a logged notice)."""
        self.model, self.revision, self.top_k, self.bf16 = model, revision, top_k, bf16
        if scoring is not None:
            self.scoring = replace(ScoringConfig.from_dict(scoring), max_answers=top_k)
        else:
            self.scoring = ScoringConfig(tau=tau, retrieval_weight=retrieval_weight, retrieval_temperature=retrieval_temperature, max_answers=top_k)
        chosen, notice = chosen_precision("bf16" if bf16 else "int8" if int8 else "fp32")
        if notice:
            LOG.warning(notice)
        self.reader = Reader(ReaderConfig(model=model, revision=revision, runtime=runtime, int8=int8, bf16=chosen == "bf16"))

    def warm_up(self) -> None:
        self.reader.warm_up()

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, model=self.model, revision=self.revision, top_k=self.top_k,
            runtime=self.reader.config.runtime, int8=self.reader.config.int8, bf16=self.bf16, scoring=self.scoring.to_dict(),
        )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SpanReader":
        return default_from_dict(cls, data)

    @component.output_types(answers=list[ExtractedAnswer])
    def run(self, query: str, documents: list[Document], top_k: int | None = None) -> dict[str, Any]:
        passages = [_passage_of(d) for d in documents]
        rarity = next((d.meta[WORD_RARITY_META] for d in documents if isinstance(d.meta.get(WORD_RARITY_META), dict)), None)
        hits = Hits((SearchHit(p, d.score if d.score is not None else 0.0) for p, d in zip(passages, documents)), rarity)
        readings = self.reader.read([query], [[p.text for p in passages]])[0] if passages else []
        scoring = self.scoring if top_k is None else replace(self.scoring, max_answers=top_k)
        result = combine(query, hits, readings, scoring, scoring.retrieval_temperature or 1.0)
        by_id = {d.id: d for d in documents}
        answers = [] if result.abstained else [self._extracted(query, a, by_id[a.passage.id]) for a in result.answers]
        # ranked as rag-qa decides: the answers (by confidence) before the no-answer when it answers
        return {"answers": [*sorted(answers, key=lambda a: -a.score), ExtractedAnswer(query=query, score=result.no_answer_confidence, data=None)]}

    @staticmethod
    def _extracted(query: str, answer: Answer, document: Document) -> ExtractedAnswer:
        offset = answer.start - answer.passage.char_start
        return ExtractedAnswer(
            query=query,
            score=answer.confidence,
            data=answer.text,
            document=document,
            context=document.content,
            document_offset=ExtractedAnswer.Span(offset, offset + len(answer.text)),
            meta={"source": answer.source, "page": answer.page, "start": answer.start, "end": answer.end, "rank_score": answer.score},
        )


@component
class PassageRetriever:
    """Retrieves passages for a text query from a rag-qa index (dense, BM25 or hybrid), optionally
    only from some source files, and only from documents a holder of `groups` may read (those
    without access groups and those sharing one; the store applies it inside its search): the same
    retrieval as `rag-qa ask` and `rag-qa search`. Groups given to `run` narrow the constructor's:
    only documents both may read."""

    def __init__(
        self, index: str, top_k: int = 5, mode: str = DEFAULT_RETRIEVAL_MODE, runtime: str = "auto", sources: list[str] | None = None,
        groups: list[str] | None = None,
    ):  # fmt: skip
        self.index, self.top_k, self.mode, self.runtime, self.sources = index, top_k, mode, runtime, sources
        self.groups = checked_groups(groups)
        self._qa: RagQA | None = None

    def warm_up(self) -> None:
        if self._qa is None:
            retrieval = RetrievalConfig(mode=self.mode, top_k=self.top_k)
            self._qa = RagQA.open(self.index, read_only=True, retrieval=retrieval, runtime=self.runtime)
            self._qa.embedder.warm_up()

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, index=self.index, top_k=self.top_k, mode=self.mode, runtime=self.runtime, sources=self.sources, groups=self.groups)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PassageRetriever":
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query: str, top_k: int | None = None, sources: list[str] | None = None, groups: list[str] | None = None) -> dict[str, Any]:
        """`groups` narrows the constructor's groups (only what both may read), never widens them;
        a source filter naming only documents outside them is UnknownSourceError, as if not indexed."""
        self.warm_up()
        assert self._qa is not None
        named = sources if sources is not None else self.sources
        readable = readable_by_both(self._qa.readable_sources, self.groups, groups)
        if readable is not None:
            named = resolve_sources(named, readable) if named is not None else readable
        hits = self._qa.search(query, top_k, named, groups=self.groups if self.groups is not None else groups)
        documents = [to_document(h.passage, score=h.score) for h in hits]
        for document in documents:  # the question's word rarity, for SpanReader's confidence
            document.meta[WORD_RARITY_META] = dict(hits.word_rarity)
        return {"documents": documents}


@component
class FileIndexer:
    """Indexes files and folders into a rag-qa index (loaders, chunking, embedding, crash-safe store),
    giving them `groups` as access groups when set (else files keep theirs)."""

    def __init__(self, index: str, runtime: str = "auto", groups: list[str] | None = None):
        self.index, self.runtime, self.groups = index, runtime, groups

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, index=self.index, runtime=self.runtime, groups=self.groups)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FileIndexer":
        return default_from_dict(cls, data)

    @component.output_types(report=dict)
    def run(self, sources: list[str], groups: list[str] | None = None) -> dict[str, Any]:
        with RagQA.open(self.index, runtime=self.runtime) as qa:
            return {"report": qa.index(sources, groups=groups if groups is not None else self.groups).to_dict()}


def indexing_pipeline(index: str, runtime: str = "auto") -> Pipeline:
    """A Haystack pipeline that indexes files: `pipeline.run({"indexer": {"sources": [...]}})`."""
    pipeline = Pipeline()
    pipeline.add_component("indexer", FileIndexer(index, runtime))
    return pipeline


def query_pipeline(
    index: str, reader: str = DEFAULT_READER_MODEL, top_k: int = 5, tau: float | None = None, mode: str = DEFAULT_RETRIEVAL_MODE, runtime: str = "auto"
) -> Pipeline:
    """Retriever → span reader, both models on `runtime` ("auto", "torch" or "onnx"). The reader
    scores answers as `rag-qa ask` does on this index: with the fit `rag-qa calibrate` saved for
    this reader and retrieval mode (else the fit shipped for the reader, else the defaults);
    `tau`, when given, decides instead of the fitted threshold (the reader's own no-answer rule). Run with
    `pipeline.run({"retriever": {"query": q}, "reader": {"query": q}})`."""
    with RagQA.open(index, read_only=True, reader=reader, retrieval=RetrievalConfig(mode=mode, top_k=top_k)) as qa:
        scoring = qa.scoring
    if scoring.retrieval_temperature is None:
        scoring = replace(scoring, retrieval_temperature=DEFAULT_RETRIEVAL_TEMPERATURE[mode])
    if tau is not None:
        scoring = replace(scoring, tau=tau, answer_threshold=None)
    pipeline = Pipeline()
    pipeline.add_component("retriever", PassageRetriever(index, top_k=top_k, mode=mode, runtime=runtime))
    reader_component = SpanReader(reader, revision=None, top_k=top_k, runtime=runtime, scoring=scoring.to_dict())
    pipeline.add_component("reader", reader_component)
    pipeline.connect("retriever.documents", "reader.documents")
    return pipeline
