"""The FAISS part of a store: vectors keyed by the SQLite row id of their passage.

Inner product on (normalised) vectors. "flat" is exact search; "hnsw" is approximate but fast at
scale. HNSW cannot delete vectors, so deletes there trigger a rebuild from SQLite (the source of
truth), which the store does.
"""

from __future__ import annotations

import json

import faiss
import numpy as np

from rag_qa.config import VectorIndexConfig
from rag_qa.store.base import EXACT_FILTER_LIMIT


class VectorIndex:
    """A FAISS `IndexIDMap2` over a flat or HNSW inner-product index."""

    def __init__(self, dimension: int, kind: str, config: VectorIndexConfig, index: faiss.Index | None = None):
        self.dimension = dimension
        self.kind = kind
        self.config = config
        self.index = index if index is not None else self._empty()
        if kind == "hnsw":
            faiss.downcast_index(self.index.index).hnsw.efSearch = config.hnsw_ef_search

    def _empty(self) -> faiss.Index:
        if self.kind == "flat":
            inner = faiss.IndexFlatIP(self.dimension)
        else:
            inner = faiss.IndexHNSWFlat(self.dimension, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.config.hnsw_ef_construction
        return faiss.IndexIDMap2(inner)

    @classmethod
    def build(cls, dimension: int, config: VectorIndexConfig, rows: np.ndarray, vectors: np.ndarray) -> "VectorIndex":
        """A fresh index of the kind `config` picks for this many vectors."""
        index = cls(dimension, config.kind_for(len(rows)), config)
        index.add(rows, vectors)
        return index

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def supports_remove(self) -> bool:
        return self.kind == "flat"

    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        if len(rows):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(rows, dtype=np.int64))

    def remove(self, rows: np.ndarray) -> None:
        """Remove vectors by row id (flat only; callers rebuild HNSW instead)."""
        if len(rows):
            self.index.remove_ids(np.asarray(rows, dtype=np.int64))

    def rows(self) -> np.ndarray:
        """Every row id held, in insertion order."""
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def search(self, queries: np.ndarray, k: int, allowed_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row ids of the top `k` per query (row -1 pads when fewer exist)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if len(self) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = max(1, min(k, len(self)))
        params = None
        if allowed_rows is not None:
            if self.kind == "hnsw" and len(allowed_rows) <= EXACT_FILTER_LIMIT:
                return self._exact_among(queries, k, np.asarray(allowed_rows, dtype=np.int64))
            selector = faiss.IDSelectorBatch(np.asarray(allowed_rows, dtype=np.int64))
            if self.kind == "hnsw":
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.config.hnsw_ef_search, 4 * k))
            else:
                params = faiss.SearchParameters(sel=selector)
        scores, rows = self.index.search(queries, k, params=params)
        return scores, rows

    def _exact_among(self, queries: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over a few allowed vectors: HNSW with a selective filter walks a graph whose
        neighbours are mostly filtered out and misses allowed vectors; brute force cannot."""
        vectors = self.index.reconstruct_batch(rows)
        scores = queries @ vectors.T
        k = min(k, len(rows))
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, best, axis=1), rows[best]

    def to_bytes(self, generation: int) -> bytes:
        """Serialised index with a one-line JSON header recording the store generation it matches."""
        header = json.dumps({"generation": generation, "kind": self.kind, "dimension": self.dimension, "count": len(self)})
        return header.encode("utf-8") + b"\n" + faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, config: VectorIndexConfig) -> tuple["VectorIndex", int]:
        """The index and the generation it was saved at."""
        newline = data.index(b"\n")
        header = json.loads(data[:newline])
        index = faiss.deserialize_index(np.frombuffer(data[newline + 1 :], dtype=np.uint8))
        return cls(header["dimension"], header["kind"], config, index), int(header["generation"])
