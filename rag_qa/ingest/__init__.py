"""Ingestion: find files, load them into `Document`s, clean them and cut them into `Passage`s."""
