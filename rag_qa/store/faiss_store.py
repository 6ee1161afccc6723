"""The embedded store: one folder with a manifest, a SQLite database and a FAISS index file.

SQLite is the source of truth: passages, their vectors, files and a full-text (FTS5) table change
together in one transaction, and every transaction bumps a generation counter. The FAISS file is a
search structure derived from SQLite; it records the generation it was built at and is replaced
atomically (temp file, fsync, `os.replace`). If a process dies between a commit and the next FAISS
save, the next open sees the stale generation and rebuilds FAISS from SQLite. So a kill at any
moment leaves either the old or the new state, never a mix, and FAISS always matches SQLite.

Only one process writes at a time (a lock file); readers never block.

    >>> store = FaissStore.open("indexes/demo", IndexSettings(), dimension=384)
    >>> store.count()
    0
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag_qa.config import IndexSettings
from rag_qa.errors import IndexCorruptError, RagQAError
from rag_qa.records import Document, Passage, SearchHit
from rag_qa.store.base import (
    DuplicatePassageError,
    StoreBase,
    StoreInfo,
    check_compatible,
    check_dimension,
    check_policy,
    check_top_k,
    check_vector_count,
    new_manifest,
    passage_from_row,
    query_terms,
)
from rag_qa.store.vector_index import VectorIndex

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "passages.sqlite3"
VECTORS = "vectors.faiss"
LOCK = "write.lock"
TEMP_SUFFIX = ".tmp"

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state (key, value) VALUES ('generation', 0);
CREATE TABLE IF NOT EXISTS files (
    source TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    page_starts TEXT NOT NULL,
    passages INTEGER NOT NULL,
    indexed_at REAL NOT NULL,
    text TEXT
);
CREATE TABLE IF NOT EXISTS passages (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    source TEXT,
    text TEXT NOT NULL,
    page INTEGER,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    meta TEXT NOT NULL,
    embedding BLOB,
    embedding_dtype TEXT
);
CREATE INDEX IF NOT EXISTS passages_by_source ON passages (source);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5 (
    text, content='passages', content_rowid='row', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS passages_fts_insert AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, text) VALUES (new.row, new.text);
END;
CREATE TRIGGER IF NOT EXISTS passages_fts_delete AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, text) VALUES ('delete', old.row, old.text);
END;
CREATE TRIGGER IF NOT EXISTS passages_fts_update AFTER UPDATE OF text ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, text) VALUES ('delete', old.row, old.text);
    INSERT INTO passages_fts (rowid, text) VALUES (new.row, new.text);
END;
"""
PASSAGE_COLUMNS = "row, id, source, text, page, char_start, char_end, meta"


@dataclass
class _Change:
    """What one write transaction did, for mirroring it in FAISS after the commit."""

    removed: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    vectors: list[Any] = field(default_factory=list)
    rebuild: bool = False

    def add(self, row: int, vector: Any) -> None:
        self.added.append(row)
        self.vectors.append(vector)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers and crashes see the old or the new file, whole."""
    temp = path.with_name(path.name + TEMP_SUFFIX)
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _encode_vector(vector: np.ndarray | Sequence[float] | None) -> tuple[bytes | None, str | None]:
    """Vectors are stored exactly as given (float32 from our embedder, float64 from Python lists)."""
    if vector is None:
        return None, None
    array = np.asarray(vector)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    return array.tobytes(), array.dtype.str


def _decode_vector(blob: bytes | None, dtype: str | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.dtype(dtype))


class FaissStore(StoreBase):
    """Passages, their vectors and full text in one crash-safe folder. Open with `FaissStore.open`."""

    def __init__(self, path: Path, manifest: dict[str, Any], connection: sqlite3.Connection, lock: int | None):
        self.path = path
        self.manifest = manifest
        self.settings = IndexSettings.from_dict(manifest["settings"])
        self._db = connection
        self._lock = lock
        self._mutex = threading.RLock()  # one SQLite connection and FAISS copy, shared by threads
        self._vectors: VectorIndex | None = None
        self._vectors_generation = -1
        self._saved_generation = -1
        self._needs_rebuild = False
        self._load_vectors()
        # True when the FAISS file was behind SQLite (an interrupted run) and FAISS was rebuilt.
        self.recovered = self._saved_generation != self._vectors_generation and self._count_vectors() > 0

    # ----------------------------------------------------------------- opening and closing
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        settings: IndexSettings | None = None,
        dimension: int | None = None,
        read_only: bool = False,
    ) -> "FaissStore":
        """Open the index at `path`, creating it (with `settings`) when it does not exist.

        Raises IndexMismatchError when the index was built with another embedding model or
        dimension than the ones given, IndexCorruptError when the folder is not a readable index.
        """
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if read_only and not manifest_path.exists():
            raise IndexCorruptError(f"{folder}: no rag-qa index here (missing {MANIFEST}); build one with `rag-qa index`")
        folder.mkdir(parents=True, exist_ok=True)
        lock = None if read_only else os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)  # set-up must not race another writer
            manifest = cls._read_or_create_manifest(manifest_path, settings, dimension)
            check_compatible(str(folder), manifest, settings, dimension)
            if not read_only:
                for stale in folder.glob("*" + TEMP_SUFFIX):
                    stale.unlink()  # left by a writer that was killed mid-save
            connection = cls._connect(folder / DATABASE, read_only)
            store = cls(folder, manifest, connection, lock)
        except BaseException:
            if lock is not None:
                os.close(lock)
            raise
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
        return store

    @staticmethod
    def _read_or_create_manifest(path: Path, settings: IndexSettings | None, dimension: int | None) -> dict[str, Any]:
        if path.exists():
            try:
                manifest = json.loads(path.read_text("utf-8"))
                IndexSettings.from_dict(manifest["settings"])
            except (ValueError, KeyError, RagQAError) as exc:
                raise IndexCorruptError(f"{path}: unreadable manifest ({exc})") from None
            if manifest.get("format_version") != FORMAT_VERSION:
                raise IndexCorruptError(
                    f"{path}: index format {manifest.get('format_version')} is not supported "
                    f"(this rag-qa reads format {FORMAT_VERSION}); rebuild the index"
                )
            return manifest
        manifest = new_manifest(settings, dimension, FORMAT_VERSION)
        atomic_write(path, json.dumps(manifest, indent=2).encode("utf-8"))
        return manifest

    @staticmethod
    def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
        try:
            if read_only:
                connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
            else:
                connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
                connection.executescript(SCHEMA)
                if "text" not in {row[1] for row in connection.execute("PRAGMA table_info(files)")}:
                    connection.execute("ALTER TABLE files ADD COLUMN text TEXT")  # indexes made before `show`
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("SELECT count(*) FROM passages").fetchone()
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"{path}: not a readable rag-qa database ({exc})") from None
        return connection

    def close(self) -> None:
        """Save pending FAISS changes and close the files."""
        if self._lock is not None:
            self.flush()
            with self._mutex:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # fold the WAL back: a compact folder
            os.close(self._lock)
            self._lock = None
        self._db.close()

    @property
    def read_only(self) -> bool:
        return self._lock is None

    @property
    def dimension(self) -> int | None:
        return self.manifest["embedding"]["dimension"]

    # ----------------------------------------------------------------- FAISS derived from SQLite
    def generation(self) -> int:
        return int(self._db.execute("SELECT value FROM state WHERE key='generation'").fetchone()[0])

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialises writers across processes (SQLite alone cannot cover the FAISS file)."""
        if self._lock is None:
            raise RagQAError(f"{self.path} is open read-only")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _load_vectors(self) -> None:
        """Use the FAISS file when it matches SQLite's generation; otherwise rebuild from SQLite."""
        file = self.path / VECTORS
        generation = self.generation()
        if file.exists():
            try:
                index, saved_generation = VectorIndex.from_bytes(file.read_bytes(), self.settings.vector_index)
                if saved_generation == generation and len(index) == self._count_vectors():
                    self._vectors, self._vectors_generation = index, generation
                    self._saved_generation, self._needs_rebuild = generation, False
                    return
            except (ValueError, RuntimeError, KeyError):
                pass  # unreadable file: rebuild below
        self._rebuild_vectors()

    def _sync(self) -> None:
        """Catch up with writes made by other processes since our FAISS copy was built."""
        if self._vectors_generation != self.generation():
            self._load_vectors()

    def _count_vectors(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM passages WHERE embedding IS NOT NULL").fetchone()[0])

    def _rebuild_vectors(self) -> None:
        rows, vectors = [], []
        for row, blob, dtype in self._db.execute(
            "SELECT row, embedding, embedding_dtype FROM passages WHERE embedding IS NOT NULL ORDER BY row"
        ):
            rows.append(row)
            vectors.append(_decode_vector(blob, dtype))
        dimension = self.dimension or (len(vectors[0]) if vectors else None)
        matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, dimension or 1), np.float32)
        self._vectors = (
            VectorIndex.build(dimension, self.settings.vector_index, np.asarray(rows, np.int64), matrix) if dimension else None
        )
        self._vectors_generation = self.generation()
        self._needs_rebuild = False

    def _vector_index(self) -> VectorIndex | None:
        """The in-memory FAISS index, current with SQLite (rebuilt if deletes or growth require it)."""
        self._sync()
        if self._needs_rebuild or (
            self._vectors is not None and self._vectors.kind != self.settings.vector_index.kind_for(len(self._vectors))
        ):
            self._rebuild_vectors()
        return self._vectors

    def flush(self) -> None:
        """Save the FAISS index atomically if it changed since the last save."""
        if self.read_only:
            return
        with self._mutex, self._file_lock():
            index = self._vector_index()
            generation = self._vectors_generation
            if self._saved_generation == generation:
                return
            file = self.path / VECTORS
            if index is None:
                file.unlink(missing_ok=True)
            else:
                atomic_write(file, index.to_bytes(generation))
            self._saved_generation = generation

    # ----------------------------------------------------------------- writing
    @contextmanager
    def _transaction(self) -> Iterator[tuple[sqlite3.Connection, _Change]]:
        """One atomic write: SQLite commits (bumping the generation), then FAISS mirrors it."""
        with self._mutex, self._file_lock():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._sync()
                change = _Change()
                yield self._db, change
                self._db.execute("UPDATE state SET value = value + 1 WHERE key='generation'")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._apply(change)

    def _apply(self, change: _Change) -> None:
        """Mirror a committed change in the in-memory FAISS index (or schedule a rebuild)."""
        vectors = self._vectors
        if change.rebuild or vectors is None or (change.removed and not vectors.supports_remove):
            self._needs_rebuild = True
        else:
            if change.removed:
                vectors.remove(np.asarray(change.removed, np.int64))
            pairs = [(row, vec) for row, vec in zip(change.added, change.vectors) if vec is not None]
            if pairs:
                vectors.add(np.asarray([r for r, _ in pairs], np.int64), np.vstack([np.asarray(v, np.float32) for _, v in pairs]))
        self._vectors_generation = self.generation()

    def _set_dimension(self, vectors: Iterable[np.ndarray | Sequence[float] | None]) -> None:
        """Record the vector dimension on first write; reject vectors of any other dimension."""
        size = check_dimension(str(self.path), self.dimension, vectors)
        if self.dimension is None and size is not None:
            self.manifest["embedding"]["dimension"] = size
            atomic_write(self.path / MANIFEST, json.dumps(self.manifest, indent=2).encode("utf-8"))

    def _insert(self, db: sqlite3.Connection, passage: Passage, vector: Any) -> int:
        blob, dtype = _encode_vector(vector)
        cursor = db.execute(
            "INSERT INTO passages (id, source, text, page, char_start, char_end, meta, embedding, embedding_dtype)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (passage.id, passage.source, passage.text, passage.page, passage.char_start, passage.char_end,
             json.dumps(passage.meta), blob, dtype),
        )  # fmt: skip
        return int(cursor.lastrowid)

    def _delete_rows(self, db: sqlite3.Connection, rows: list[int]) -> None:
        db.executemany("DELETE FROM passages WHERE row = ?", [(r,) for r in rows])

    def _delete_source_rows(self, db: sqlite3.Connection, source: str) -> list[int]:
        rows = [r for (r,) in db.execute("SELECT row FROM passages WHERE source = ?", (source,))]
        self._delete_rows(db, rows)
        return rows

    def replace_files(self, files: Sequence[tuple[Document, list[Passage]]], vectors: np.ndarray) -> int:
        """Atomically store new versions of files: each document (its text, hash and page starts)
        with its passages, `vectors` holding one row per passage in order. Old passages of those
        files are removed. Returns the number of passages added."""
        total = sum(len(passages) for _, passages in files)
        check_vector_count(total, len(vectors))
        with self._transaction() as (db, change):
            self._set_dimension(vectors[:1])
            for document, passages in files:
                change.removed += self._delete_source_rows(db, document.source)
                for passage in passages:
                    vector = vectors[len(change.added)]
                    change.add(self._insert(db, passage, vector), vector)
                db.execute(
                    "INSERT OR REPLACE INTO files (source, content_hash, page_starts, passages, indexed_at, text) VALUES (?, ?, ?, ?, ?, ?)",
                    (document.source, document.content_hash, json.dumps(list(document.page_starts)), len(passages), time.time(), document.text),
                )
        return len(change.added)

    def delete_source(self, source: str) -> int:
        """Remove a file and all its passages; returns how many passages were removed."""
        with self._transaction() as (db, change):
            change.removed += self._delete_source_rows(db, source)
            db.execute("DELETE FROM files WHERE source = ?", (source,))
        return len(change.removed)

    def write(self, passages: Sequence[Passage], vectors: Sequence[Any], policy: str = "fail") -> int:
        """Write passages by id with a duplicate policy ("fail", "skip" or "overwrite").
        Returns how many were written. With "fail", nothing is written if any id exists."""
        check_policy(policy)
        with self._transaction() as (db, change):
            self._set_dimension(vectors)
            for passage, vector in zip(passages, vectors, strict=True):
                existing = db.execute("SELECT row FROM passages WHERE id = ?", (passage.id,)).fetchone()
                if existing and policy == "fail":
                    raise DuplicatePassageError(f"a passage with id {passage.id!r} already exists")
                if existing and policy == "skip":
                    continue
                if existing:
                    self._delete_rows(db, [existing[0]])
                    change.removed.append(existing[0])
                change.add(self._insert(db, passage, vector), vector)
        return len(change.added)

    def delete_ids(self, ids: Sequence[str]) -> int:
        """Remove passages by id (unknown ids are ignored); returns how many were removed."""
        with self._transaction() as (db, change):
            change.removed += [r for i in ids for (r,) in db.execute("SELECT row FROM passages WHERE id = ?", (i,))]
            self._delete_rows(db, change.removed)
        return len(change.removed)

    def update_meta(self, updates: dict[str, dict[str, Any]]) -> int:
        """Replace the metadata of passages by id: {id: new_meta}. Returns how many changed."""
        with self._transaction() as (db, _):
            changed = sum(
                db.execute("UPDATE passages SET meta = ? WHERE id = ?", (json.dumps(meta), pid)).rowcount
                for pid, meta in updates.items()
            )
        return changed

    def clear(self) -> None:
        """Remove every passage and file."""
        with self._transaction() as (db, change):
            db.execute("DELETE FROM passages")
            db.execute("DELETE FROM files")
            change.rebuild = True

    def write_metadata(self, name: str, data: dict[str, Any]) -> str:
        """Keep small JSON metadata with the index under `name` (such as the fitted scoring); returns where."""
        path = self.path / f"{name}.json"
        atomic_write(path, json.dumps(data, indent=2).encode("utf-8"))
        return str(path)

    # ----------------------------------------------------------------- reading
    def read_metadata(self, name: str) -> dict[str, Any] | None:
        """Metadata saved with `write_metadata`, or None."""
        path = self.path / f"{name}.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text("utf-8"))
        except ValueError as exc:
            raise IndexCorruptError(f"{path}: unreadable ({exc})") from None

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM passages").fetchone()[0])

    def file_hash(self, source: str) -> str | None:
        """Content hash the file was indexed with, or None if it is not indexed."""
        row = self._db.execute("SELECT content_hash FROM files WHERE source = ?", (source,)).fetchone()
        return row[0] if row else None

    def files(self) -> list[dict[str, Any]]:
        """Indexed files with their hash, page starts and passage count."""
        cursor = self._db.execute("SELECT source, content_hash, page_starts, passages, indexed_at FROM files ORDER BY source")
        return [
            {"source": s, "content_hash": h, "page_starts": json.loads(p), "passages": n, "indexed_at": t}
            for s, h, p, n, t in cursor
        ]

    def page_starts(self, source: str) -> tuple[int, ...]:
        row = self._db.execute("SELECT page_starts FROM files WHERE source = ?", (source,)).fetchone()
        return tuple(json.loads(row[0])) if row else ()

    def document_text(self, source: str) -> str | None:
        """The text that the file's passage and answer offsets index, or None when the file is not
        indexed (or was indexed before rag-qa kept the text)."""
        try:
            row = self._db.execute("SELECT text FROM files WHERE source = ?", (source,)).fetchone()
        except sqlite3.OperationalError:  # an index from before the text column, opened read-only
            return None
        return row[0] if row else None

    def iter_passages(self, batch: int = 1000) -> Iterator[tuple[Passage, np.ndarray | None]]:
        """Every passage with its vector, in insertion order."""
        last = 0
        while True:
            rows = self._db.execute(
                f"SELECT {PASSAGE_COLUMNS}, embedding, embedding_dtype FROM passages WHERE row > ? ORDER BY row LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for passage, row in zip(self._passages(rows), rows):
                yield passage, _decode_vector(row[8], row[9])
            last = rows[-1][0]

    def passages_by_rows(self, rows: Sequence[int]) -> dict[int, Passage]:
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        found = self._db.execute(f"SELECT {PASSAGE_COLUMNS} FROM passages WHERE row IN ({marks})", list(rows)).fetchall()
        return {row[0]: passage for passage, row in zip(self._passages(found), found)}

    def _passages(self, rows: Sequence[Sequence[Any]]) -> list[Passage]:
        """Passages from their rows, each knowing where its file's pages break inside it."""
        sources = sorted({row[2] for row in rows if row[2] is not None})
        starts: dict[str, list[int]] = {}
        for first in range(0, len(sources), 500):  # stay under SQLite's bound-parameter limit
            chunk = sources[first : first + 500]
            marks = ",".join("?" * len(chunk))
            starts.update((s, json.loads(p)) for s, p in self._db.execute(f"SELECT source, page_starts FROM files WHERE source IN ({marks})", chunk))
        return [passage_from_row(row, json.loads(row[7]), starts.get(row[2], ())) for row in rows]

    def _rows_where(self, column: str, values: Sequence[str]) -> np.ndarray:
        rows: list[int] = []
        for start in range(0, len(values), 500):  # stay under SQLite's bound-parameter limit
            chunk = list(values[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows += [r for (r,) in self._db.execute(f"SELECT row FROM passages WHERE {column} IN ({marks})", chunk)]
        return np.asarray(rows, dtype=np.int64)

    def search_many(
        self, queries: np.ndarray, top_k: int = 10, sources: Sequence[str] | None = None, ids: Sequence[str] | None = None
    ) -> list[list[SearchHit]]:
        """`search` for a batch of queries in one FAISS call."""
        check_top_k(top_k)
        with self._mutex:
            index = self._vector_index()
            if index is None or len(index) == 0:
                return [[] for _ in queries]
            allowed = None
            if sources is not None:
                allowed = self._rows_where("source", sources)
            if ids is not None:
                by_id = self._rows_where("id", ids)
                allowed = by_id if allowed is None else np.intersect1d(allowed, by_id)
            if allowed is not None and len(allowed) == 0:
                return [[] for _ in queries]
            scores, rows = index.search(queries, top_k, allowed)
            found = self.passages_by_rows(sorted({int(r) for r in rows.ravel() if r >= 0}))
        return [
            [SearchHit(found[int(r)], float(s)) for s, r in zip(score_row, row_row) if r >= 0 and int(r) in found]
            for score_row, row_row in zip(scores, rows)
        ]

    def search_text(self, query: str, top_k: int = 10) -> list[SearchHit]:
        """BM25 full-text retrieval over the FTS5 table (score: higher is better)."""
        terms = query_terms(query)
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        cursor = self._db.execute(
            f"SELECT {', '.join('p.' + c.strip() for c in PASSAGE_COLUMNS.split(','))}, -bm25(passages_fts) AS score "
            "FROM passages_fts JOIN passages p ON p.row = passages_fts.rowid "
            "WHERE passages_fts MATCH ? ORDER BY score DESC LIMIT ?",
            (match, top_k),
        )
        rows = cursor.fetchall()
        return [SearchHit(passage, float(row[8])) for passage, row in zip(self._passages(rows), rows)]

    # ----------------------------------------------------------------- reporting
    def info(self) -> StoreInfo:
        with self._mutex:
            index = self._vector_index()
        embedding = self.manifest["embedding"]
        return StoreInfo(
            path=str(self.path),
            files=int(self._db.execute("SELECT count(*) FROM files").fetchone()[0]),
            passages=self.count(),
            vectors=len(index) if index is not None else 0,
            embedding_model=embedding["model"],
            embedding_revision=embedding["revision"],
            dimension=embedding["dimension"],
            index_type=index.kind if index is not None else self.settings.vector_index.kind_for(0),
            format_version=self.manifest["format_version"],
        )

    def check(self) -> list[str]:
        """Consistency problems between the FAISS file, SQLite, the full-text table and the files
        table (an empty list means consistent). Reads the FAISS file from disk, as saved."""
        problems = []
        if self._db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append("SQLite integrity check failed")
        expected = {r for (r,) in self._db.execute("SELECT row FROM passages WHERE embedding IS NOT NULL")}
        file = self.path / VECTORS
        if expected and not file.exists():
            problems.append(f"{VECTORS} is missing but {len(expected)} passages have vectors")
        elif file.exists():
            try:
                saved, generation = VectorIndex.from_bytes(file.read_bytes(), self.settings.vector_index)
                stored = saved.rows().tolist()
                if generation != self.generation():
                    problems.append(f"{VECTORS} is at generation {generation}, SQLite at {self.generation()}")
                if len(stored) != len(set(stored)):
                    problems.append(f"{VECTORS} holds duplicate vectors")
                if set(stored) != expected:
                    problems.append(
                        f"{VECTORS} and SQLite disagree: {len(set(stored) - expected)} vectors without a passage, "
                        f"{len(expected - set(stored))} passages without a vector"
                    )
            except (ValueError, RuntimeError, KeyError) as exc:
                problems.append(f"{VECTORS} is unreadable ({exc})")
        fts = self._db.execute("SELECT count(*) FROM passages_fts").fetchone()[0]
        if fts != self.count():
            problems.append(f"full-text table has {fts} rows, passages {self.count()}")
        mismatched = self._db.execute(
            "SELECT f.source FROM files f LEFT JOIN passages p ON p.source = f.source "
            "GROUP BY f.source HAVING count(p.row) != f.passages"
        ).fetchall()
        problems += [f"{source}: passage count differs from the files table" for (source,) in mismatched]
        return problems
