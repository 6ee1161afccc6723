"""FAISS as a mirror of SQLite: an in-memory index rebuilt from or kept in step with the database,
and a file on disk stamped with the database generation it matches, replaced atomically. A stale
or damaged file (a writer killed between a commit and the next save) is rebuilt from SQLite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag_qa.config import VectorIndexConfig
from rag_qa.store.sqlite_db import PassageDatabase
from rag_qa.store.vector_index import VectorIndex
from rag_qa.store.writing import atomic_write


@dataclass
class Change:
    """What one write transaction did, for mirroring it in FAISS after the commit."""

    removed: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    vectors: list[Any] = field(default_factory=list)
    rebuild: bool = False

    def add(self, row: int, vector: Any) -> None:
        self.added.append(row)
        self.vectors.append(vector)


class FaissMirror:
    """The FAISS index of the database's vectors; `current()` is always in step with SQLite."""

    def __init__(self, file: Path, settings: VectorIndexConfig, database: PassageDatabase, dimension: Callable[[], int | None]):
        self.file, self.settings, self.database, self.dimension = file, settings, database, dimension
        self.index: VectorIndex | None = None
        self.generation = -1  # the database generation `index` reflects
        self.saved_generation = -1  # the generation of the file on disk
        self.needs_rebuild = False
        self.load()
        # True when the file was behind SQLite (an interrupted run) and FAISS was rebuilt.
        self.recovered = self.saved_generation != self.generation and database.count_vectors() > 0

    def load(self) -> None:
        """Use the file when it matches SQLite's generation; otherwise rebuild from SQLite."""
        generation = self.database.generation()
        if self.file.exists():
            try:
                index, saved_generation = VectorIndex.from_bytes(self.file.read_bytes(), self.settings)
                if saved_generation == generation and len(index) == self.database.count_vectors() and self.dimension() in (None, index.dimension):
                    self.index, self.generation = index, generation
                    self.saved_generation, self.needs_rebuild = generation, False
                    return
            except (ValueError, RuntimeError, KeyError):
                pass  # unreadable file: rebuild below
        self.rebuild()

    def sync(self) -> None:
        """Catch up with writes made by other processes since this copy was built."""
        if self.generation != self.database.generation():
            self.load()

    def rebuild(self) -> None:
        rows, vectors = self.database.vectors()
        dimension = self.dimension() or (len(vectors[0]) if vectors else None)
        matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, dimension or 1), np.float32)
        self.index = VectorIndex.build(dimension, self.settings, np.asarray(rows, np.int64), matrix) if dimension else None
        self.generation = self.database.generation()
        self.needs_rebuild = False

    def current(self) -> VectorIndex | None:
        """The in-memory index, current with SQLite (rebuilt if deletes or growth require it)."""
        self.sync()
        if self.needs_rebuild or (self.index is not None and self.index.kind != self.settings.kind_for(len(self.index))):
            self.rebuild()
        return self.index

    def apply(self, change: Change) -> None:
        """Mirror a committed change in memory (or schedule a rebuild)."""
        index = self.index
        if change.rebuild or index is None or (change.removed and not index.supports_remove):
            self.needs_rebuild = True
        else:
            if change.removed:
                index.remove(np.asarray(change.removed, np.int64))
            pairs = [(row, vec) for row, vec in zip(change.added, change.vectors) if vec is not None]
            if pairs:
                index.add(np.asarray([r for r, _ in pairs], np.int64), np.vstack([np.asarray(v, np.float32) for _, v in pairs]))
        self.generation = self.database.generation()

    def save(self) -> None:
        """Write the file atomically if it is behind (the caller holds the writer lock)."""
        index = self.current()
        if self.saved_generation == self.generation:
            return
        if index is None:
            self.file.unlink(missing_ok=True)
        else:
            atomic_write(self.file, index.to_bytes(self.generation))
        self.saved_generation = self.generation

    def file_problems(self, expected_rows: set[int]) -> list[str]:
        """How the file on disk, as saved, disagrees with SQLite's vectors and generation."""
        name = self.file.name
        if not self.file.exists():
            return [f"{name} is missing but {len(expected_rows)} passages have vectors"] if expected_rows else []
        try:
            saved, generation = VectorIndex.from_bytes(self.file.read_bytes(), self.settings)
        except (ValueError, RuntimeError, KeyError) as exc:
            return [f"{name} is unreadable ({exc})"]
        problems = []
        if self.dimension() not in (None, saved.dimension):
            problems.append(f"{name} holds {saved.dimension}-dimensional vectors; the index's are {self.dimension()}-dimensional")
        stored = saved.rows().tolist()
        if generation != self.database.generation():
            problems.append(f"{name} is at generation {generation}, SQLite at {self.database.generation()}")
        if len(stored) != len(set(stored)):
            problems.append(f"{name} holds duplicate vectors")
        if set(stored) != expected_rows:
            problems.append(
                f"{name} and SQLite disagree: {len(set(stored) - expected_rows)} vectors without a passage, "
                f"{len(expected_rows - set(stored))} passages without a vector"
            )
        return problems
