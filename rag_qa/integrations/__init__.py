"""Adapters that plug rag-qa into other frameworks (Haystack)."""
