"""Passage stores: the embedded FAISS + SQLite store (default) behind one small interface."""

from rag_qa.store.faiss_store import DuplicatePassageError, FaissStore, StoreInfo

__all__ = ["DuplicatePassageError", "FaissStore", "StoreInfo"]
