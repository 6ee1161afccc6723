"""Haystack 3 integration: rag-qa's crash-safe FAISS + SQLite store as a Haystack `DocumentStore`,
and a retriever component for it. Same code path as the rag-qa CLI, so an index built by
`rag-qa index` can be searched from a Haystack pipeline and vice versa.

    >>> from rag_qa.integrations.haystack import FaissDocumentStore, FaissEmbeddingRetriever
    >>> store = FaissDocumentStore("indexes/haystack", embedding_dim=384)
    >>> retriever = FaissEmbeddingRetriever(store, top_k=5)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.dataclasses import ByteStream, SparseEmbedding
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.utils.filters import document_matches_filter

from rag_qa.config import EmbedderConfig, IndexSettings, VectorIndexConfig
from rag_qa.records import Passage
from rag_qa.store import DuplicatePassageError, FaissStore
from rag_qa.store.faiss_store import MANIFEST

# Haystack fields with no column of their own travel inside the metadata under this key.
EXTRAS_KEY = "__haystack__"
SOURCE_FIELDS = ("source", "page", "char_start", "char_end")
POLICIES = {
    DuplicatePolicy.NONE: "fail",
    DuplicatePolicy.FAIL: "fail",
    DuplicatePolicy.SKIP: "skip",
    DuplicatePolicy.OVERWRITE: "overwrite",
}


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


def _validate_filters(filters: dict[str, Any] | None) -> None:
    if filters and "operator" not in filters and "conditions" not in filters:
        raise FilterError("Invalid filter syntax: a filter needs 'operator' and either 'conditions' or 'field'/'value'.")


class FaissDocumentStore:
    """Haystack `DocumentStore` over a rag-qa index folder (FAISS + SQLite, crash-safe).

    `embedding_dim` is checked against an existing index, or fixed by the first embedding written
    when None. Filters use Haystack's filter syntax over `meta` (plus `id` and `content`).
    """

    def __init__(self, path: str, embedding_dim: int | None = None, embedding_model: str | None = None, index_type: str = "auto"):
        self.path = str(path)
        self.embedding_dim = embedding_dim
        self.embedding_model = embedding_model
        self.index_type = index_type
        settings = None
        if not (Path(path) / MANIFEST).exists():
            settings = IndexSettings(
                embedder=EmbedderConfig(model=embedding_model or "unspecified (written through Haystack)", revision=None),
                vector_index=VectorIndexConfig(index_type=index_type),
            )
        self.store = FaissStore.open(path, settings, dimension=embedding_dim)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, path=self.path, embedding_dim=self.embedding_dim, embedding_model=self.embedding_model, index_type=self.index_type
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FaissDocumentStore":
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
        """Remove every document. With `recreate_index`, the FAISS file is also rewritten empty
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
        self, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int = 10
    ) -> list[Document]:
        """The `top_k` documents with the highest inner product with `query_embedding`."""
        import numpy as np

        ids = [d.id for d in self.filter_documents(filters)] if filters else None
        hits = self.store.search(np.asarray(query_embedding, dtype=np.float32), top_k, ids=ids)
        return [to_document(hit.passage, score=hit.score) for hit in hits]


@component
class FaissEmbeddingRetriever:
    """Retrieves documents from a `FaissDocumentStore` by embedding similarity."""

    def __init__(self, document_store: FaissDocumentStore, filters: dict[str, Any] | None = None, top_k: int = 10):
        if not isinstance(document_store, FaissDocumentStore):
            raise ValueError("document_store must be a rag_qa FaissDocumentStore")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, document_store=self.document_store.to_dict(), filters=self.filters, top_k=self.top_k)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FaissEmbeddingRetriever":
        data["init_parameters"]["document_store"] = FaissDocumentStore.from_dict(data["init_parameters"]["document_store"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query_embedding: list[float], filters: dict[str, Any] | None = None, top_k: int | None = None) -> dict[str, Any]:
        return {
            "documents": self.document_store.embedding_retrieval(
                query_embedding,
                filters=filters if filters is not None else self.filters,
                top_k=top_k if top_k is not None else self.top_k,
            )
        }
