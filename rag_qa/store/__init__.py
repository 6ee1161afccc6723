"""Passage stores behind one interface: the embedded FAISS + SQLite folder (default) and
PostgreSQL + pgvector (a `postgresql://` URL). `open_store` picks one by the location's form."""

from __future__ import annotations

import os
from pathlib import Path

from rag_qa.config import IndexSettings
from rag_qa.errors import RagQAError
from rag_qa.store.base import DuplicatePassageError, StoreInfo
from rag_qa.store.faiss_store import MANIFEST, FaissStore
from rag_qa.store.pg_store import PgStore, is_database_url
from rag_qa.store.protocol import PassageStore

Store = PassageStore  # the declared interface both backends implement

__all__ = ["DuplicatePassageError", "FaissStore", "PassageStore", "PgStore", "Store", "StoreInfo", "open_store", "store_exists"]


def open_store(location: str | os.PathLike[str], settings: IndexSettings | None = None, dimension: int | None = None, read_only: bool = False) -> PassageStore:
    """A folder path opens (or creates) a FAISS index; `postgresql://…[#name]` a PostgreSQL one."""
    if is_database_url(location):
        return PgStore.open(str(location), settings, dimension, read_only)
    return FaissStore.open(location, settings, dimension, read_only)


def store_exists(location: str | os.PathLike[str]) -> bool:
    """Whether an index is already at `location` (its settings then come from the index)."""
    if is_database_url(location):
        try:
            PgStore.open(str(location), read_only=True).close()
        except RagQAError:
            return False
        return True
    return (Path(location) / MANIFEST).exists()
