"""The public facade: open an index, add documents, search it.

    >>> from rag_qa import RagQA
    >>> with RagQA.open("indexes/docs") as qa:
    ...     report = qa.index(["data/"])
    ...     hits = qa.search("How long is the warranty?", top_k=3)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rag_qa.config import IndexSettings, IngestConfig
from rag_qa.embed import Embedder
from rag_qa.errors import IndexMismatchError
from rag_qa.indexer import IndexReport, index_paths
from rag_qa.ingest.loaders import source_name
from rag_qa.records import SearchHit
from rag_qa.store import FaissStore, StoreInfo

DEFAULT_INDEX = "indexes/default"


class RagQA:
    """An index on disk plus the models that read and write it. Models load on first use."""

    def __init__(self, store: FaissStore, embedder: Embedder, ingest: IngestConfig | None = None):
        self.store = store
        self.embedder = embedder
        self.ingest = ingest if ingest is not None else IngestConfig()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = DEFAULT_INDEX,
        settings: IndexSettings | None = None,
        ingest: IngestConfig | None = None,
        read_only: bool = False,
    ) -> "RagQA":
        """Open (or create, with `settings`) the index at `path`.

        An existing index keeps the settings it was built with; passing settings with a different
        embedding model raises IndexMismatchError.
        """
        store = FaissStore.open(path, settings, read_only=read_only)
        return cls(store, Embedder(store.settings.embedder), ingest)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "RagQA":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_embedder(self) -> None:
        """The loaded embedder must produce vectors of the index's dimension."""
        if self.store.dimension is not None and self.embedder.dimension != self.store.dimension:
            raise IndexMismatchError(
                f"{self.store.path} holds {self.store.dimension}-dimensional vectors but the embedder "
                f"{self.embedder.config.model!r} produces {self.embedder.dimension}"
            )

    def index(self, paths: Sequence[str | os.PathLike[str]], progress: bool = False) -> IndexReport:
        """Add or update files and folders; unreadable files are reported in the result."""
        self._check_embedder()
        return index_paths([str(p) for p in paths], self.store, self.embedder, self.ingest, progress)

    def search(self, query: str, top_k: int = 5, sources: Sequence[str] | None = None) -> list[SearchHit]:
        """The passages closest in meaning to `query` (dense retrieval)."""
        self._check_embedder()
        return self.store.search(self.embedder.embed_query(query), top_k, sources)

    def delete(self, source: str | os.PathLike[str]) -> int:
        """Remove a file's passages; `source` may be the stored name or a path to the file."""
        name = str(source)
        if self.store.file_hash(name) is None:
            name = source_name(name)
        return self.store.delete_source(name)

    def info(self) -> StoreInfo:
        return self.store.info()
