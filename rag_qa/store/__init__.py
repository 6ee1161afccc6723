"""Passage stores behind one interface: the embedded FAISS + SQLite folder (default) and
PostgreSQL + pgvector (a `postgresql://` URL). `open_store` picks one by the location's form."""

from __future__ import annotations

import os

from rag_qa.config import IndexSettings
from rag_qa.store.base import DuplicatePassageError, StoreInfo
from rag_qa.store.faiss_store import FaissStore
from rag_qa.store.pg_schema import is_database_url
from rag_qa.store.pg_store import PgStore
from rag_qa.store.protocol import PassageStore

Store = PassageStore  # the declared interface both backends implement

__all__ = ["DuplicatePassageError", "FaissStore", "PassageStore", "PgStore", "Store", "StoreInfo", "open_store"]


def open_store(
    location: str | os.PathLike[str], settings: IndexSettings | None = None, dimension: int | None = None, read_only: bool = False,
    new_settings: IndexSettings | None = None,
) -> PassageStore:  # fmt: skip
    """A folder path opens (or creates) a FAISS index; `postgresql://…[#name]` a PostgreSQL one.

    `settings` must match an existing index (a different embedding model is an error);
    `new_settings` only apply when the index is created here, and are never checked."""
    if is_database_url(location):
        return PgStore.open(str(location), settings, dimension, read_only, new_settings)
    return FaissStore.open(location, settings, dimension, read_only, new_settings)
