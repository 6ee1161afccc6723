"""What every passage store shares: the error for duplicate ids, the `info` record, and the
description of an index (embedding model, dimension, settings) that decides whether a given
embedder may read and write it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from rag_qa.config import IndexSettings
from rag_qa.errors import ConfigError, IndexMismatchError, RagQAError
from rag_qa.records import Passage, SearchHit, page_breaks

POLICIES = ("fail", "skip", "overwrite")
# Below this many allowed vectors a filtered search scores each exactly instead of using an
# approximate index (milliseconds), in both stores.
EXACT_FILTER_LIMIT = 20_000
S = TypeVar("S", bound="StoreBase")
T = TypeVar("T")


class DuplicatePassageError(RagQAError):
    """A passage id is already stored and the write policy is "fail"."""


@dataclass(frozen=True)
class StoreInfo:
    """What `rag-qa info` reports."""

    path: str
    files: int
    passages: int
    vectors: int
    embedding_model: str | None
    embedding_revision: str | None
    dimension: int | None
    index_type: str
    format_version: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class StoreBase:
    """What both stores do the same way: context management and one-query search."""

    keeps_originals = False  # whether `Document.original` is kept (PostgreSQL); else files stay where they are

    def close(self) -> None:
        raise NotImplementedError

    def original(self, source: str) -> bytes | None:
        """The bytes of an indexed file whose original the index keeps, else None."""
        return None

    def original_sources(self) -> set[str]:
        """The indexed files whose originals the index keeps."""
        return set()

    def search_many(self, queries: Any, top_k: int = 10, sources: Sequence[str] | None = None, ids: Sequence[str] | None = None) -> list[list[SearchHit]]:
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def search(self, query: Any, top_k: int = 10, sources: Sequence[str] | None = None, ids: Sequence[str] | None = None) -> list[SearchHit]:
        """Dense retrieval: the `top_k` passages with the highest inner product with `query`,
        optionally only among the passages of `sources` or with the given `ids`."""
        return self.search_many(np.atleast_2d(query), top_k, sources, ids)[0]


def new_manifest(settings: IndexSettings | None, dimension: int | None, format_version: int) -> dict[str, Any]:
    """The description of a new index; the dimension is filled in by the first write when None."""
    settings = settings if settings is not None else IndexSettings()
    return {
        "format_version": format_version,
        "created_at": time.time(),
        "embedding": {
            "model": settings.embedder.model,
            "revision": settings.embedder.revision,
            "dimension": dimension,
            "normalized": True,
        },
        "metric": "inner_product",
        "settings": settings.to_dict(),
    }


def check_compatible(where: str, manifest: dict[str, Any], settings: IndexSettings | None, dimension: int | None) -> None:
    """An index only takes vectors from the embedding model and dimension it was built with."""
    built = manifest["embedding"]
    if settings is not None and settings.embedder.model != built["model"]:
        raise IndexMismatchError(
            f"{where} was built with embedding model {built['model']!r}, not {settings.embedder.model!r}; "
            "use the same embedder or a new index"
        )
    if dimension is not None and built["dimension"] not in (None, dimension):
        raise IndexMismatchError(
            f"{where} holds {built['dimension']}-dimensional vectors, not {dimension}; use the same embedder or a new index"
        )


def check_dimension(where: str, known: int | None, vectors: Any) -> int | None:
    """The dimension of the first non-empty vector, which must equal the index's if it has one."""
    for vector in vectors:
        if vector is None:
            continue
        if known is not None and len(vector) != known:
            raise IndexMismatchError(f"{where} holds {known}-dimensional vectors; got one of {len(vector)}")
        return len(vector)
    return None


def check_vector_count(passages: int, vectors: int) -> None:
    """A write needs exactly one vector (or None) per passage."""
    if passages != vectors:
        raise ConfigError(f"{passages} passages but {vectors} vectors")


def check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ConfigError(f"policy must be one of {POLICIES}, got {policy!r}")


def unique_by_id(passages: Sequence[Passage], vectors: Sequence[Any], policy: str) -> dict[str, tuple[Passage, Any]]:
    """A write's passages with each id once, as both stores take them: a repeated id raises under
    "fail", keeps its first under "skip" and its last under "overwrite"."""
    kept: dict[str, tuple[Passage, Any]] = {}
    for passage, vector in zip(passages, vectors, strict=True):
        if passage.id in kept and policy == "fail":
            raise DuplicatePassageError(f"a passage with id {passage.id!r} appears twice in the batch")
        if passage.id not in kept or policy == "overwrite":
            kept[passage.id] = (passage, vector)
    return kept


def check_top_k(top_k: int) -> None:
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")


MAX_QUERY_TERMS = 64  # a full-text query of a 100,000-character question stays cheap


def query_terms(query: str) -> list[str]:
    """The words of a full-text query (letters and digits, lower case), in order, at most
    MAX_QUERY_TERMS of them: punctuation cannot break the query syntax and length cannot blow it up."""
    return "".join(c if c.isalnum() else " " for c in query).lower().split()[:MAX_QUERY_TERMS]


def passage_from_row(row: Sequence[Any], meta: dict[str, Any], page_starts: Sequence[int]) -> Passage:
    """A passage from its stored columns (row, id, source, text, page, char_start, char_end, ...),
    its decoded meta and its file's page starts (so the passage knows where its pages break)."""
    _, pid, source, text, page, start, end = row[:7]
    return Passage(pid, text, source, start, end, page, meta, page_breaks=page_breaks(page_starts, start, end))


def iter_passage_rows(fetch_after: Callable[[int], list[Any]], decode: Callable[[list[Any]], Iterable[T]]) -> Iterator[T]:
    """Walk a passages table in row order, a batch at a time (keyset pagination on `row`, the
    first column): `fetch_after(row)` returns the next batch, `decode` turns it into items."""
    last = 0
    while rows := fetch_after(last):
        yield from decode(rows)
        last = rows[-1][0]
