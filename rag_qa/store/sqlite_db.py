"""The FAISS store's source of truth: one SQLite database (WAL, synchronous=FULL) holding the
passages with their vectors, the files they came from (hash, page starts, text), an FTS5 table for
BM25, and a generation counter that every committed write bumps. Writes go through the facade's
transaction (`FaissStore._transaction`); this module only knows the tables."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag_qa.errors import IndexCorruptError
from rag_qa.records import Document, Passage, SearchHit
from rag_qa.store.base import iter_passage_rows, passage_from_row, query_terms

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
MAX_PARAMETERS = 500  # stay under SQLite's bound-parameter limit


def connect(path: Path, read_only: bool) -> sqlite3.Connection:
    """Open (and for writers create or upgrade) the database; IndexCorruptError if unreadable."""
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


def encode_vector(vector: np.ndarray | Sequence[float] | None) -> tuple[bytes | None, str | None]:
    """Vectors are stored exactly as given (float32 from our embedder, float64 from Python lists)."""
    if vector is None:
        return None, None
    array = np.asarray(vector)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    return array.tobytes(), array.dtype.str


def decode_vector(blob: bytes | None, dtype: str | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.dtype(dtype))


class PassageDatabase:
    """Queries and row-level writes on one SQLite connection (the caller serialises threads)."""

    def __init__(self, connection: sqlite3.Connection):
        self.db = connection

    def close(self) -> None:
        self.db.close()

    # ----------------------------------------------------------------- transactions
    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Commit, bumping the generation that the FAISS file is stamped with."""
        self.db.execute("UPDATE state SET value = value + 1 WHERE key='generation'")
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        self.db.execute("ROLLBACK")

    def checkpoint(self) -> None:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # fold the WAL back: a compact folder

    # ----------------------------------------------------------------- writing (inside a transaction)
    def insert(self, passage: Passage, vector: Any) -> int:
        blob, dtype = encode_vector(vector)
        cursor = self.db.execute(
            "INSERT INTO passages (id, source, text, page, char_start, char_end, meta, embedding, embedding_dtype)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (passage.id, passage.source, passage.text, passage.page, passage.char_start, passage.char_end,
             json.dumps(passage.meta), blob, dtype),
        )  # fmt: skip
        return int(cursor.lastrowid)

    def delete_rows(self, rows: list[int]) -> None:
        self.db.executemany("DELETE FROM passages WHERE row = ?", [(r,) for r in rows])

    def delete_source_rows(self, source: str) -> list[int]:
        rows = [r for (r,) in self.db.execute("SELECT row FROM passages WHERE source = ?", (source,))]
        self.delete_rows(rows)
        return rows

    def put_file(self, document: Document, passages: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO files (source, content_hash, page_starts, passages, indexed_at, text) VALUES (?, ?, ?, ?, ?, ?)",
            (document.source, document.content_hash, json.dumps(list(document.page_starts)), passages, time.time(), document.text),
        )

    def delete_file(self, source: str) -> None:
        self.db.execute("DELETE FROM files WHERE source = ?", (source,))

    def delete_everything(self) -> None:
        self.db.execute("DELETE FROM passages")
        self.db.execute("DELETE FROM files")

    def row_of_id(self, passage_id: str) -> int | None:
        found = self.db.execute("SELECT row FROM passages WHERE id = ?", (passage_id,)).fetchone()
        return found[0] if found else None

    def update_meta(self, updates: dict[str, dict[str, Any]]) -> int:
        return sum(self.db.execute("UPDATE passages SET meta = ? WHERE id = ?", (json.dumps(m), pid)).rowcount for pid, m in updates.items())

    # ----------------------------------------------------------------- reading
    def generation(self) -> int:
        return int(self.db.execute("SELECT value FROM state WHERE key='generation'").fetchone()[0])

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM passages").fetchone()[0])

    def count_files(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM files").fetchone()[0])

    def count_vectors(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM passages WHERE embedding IS NOT NULL").fetchone()[0])

    def vectors(self) -> tuple[list[int], list[np.ndarray]]:
        """Every stored vector with its row, in row order (what FAISS is rebuilt from)."""
        rows, vectors = [], []
        for row, blob, dtype in self.db.execute("SELECT row, embedding, embedding_dtype FROM passages WHERE embedding IS NOT NULL ORDER BY row"):
            rows.append(row)
            vectors.append(decode_vector(blob, dtype))
        return rows, vectors

    def file_hash(self, source: str) -> str | None:
        row = self.db.execute("SELECT content_hash FROM files WHERE source = ?", (source,)).fetchone()
        return row[0] if row else None

    def files(self) -> list[dict[str, Any]]:
        cursor = self.db.execute("SELECT source, content_hash, page_starts, passages, indexed_at FROM files ORDER BY source")
        return [{"source": s, "content_hash": h, "page_starts": json.loads(p), "passages": n, "indexed_at": t} for s, h, p, n, t in cursor]

    def page_starts(self, source: str) -> tuple[int, ...]:
        row = self.db.execute("SELECT page_starts FROM files WHERE source = ?", (source,)).fetchone()
        return tuple(json.loads(row[0])) if row else ()

    def document_text(self, source: str) -> str | None:
        try:
            row = self.db.execute("SELECT text FROM files WHERE source = ?", (source,)).fetchone()
        except sqlite3.OperationalError:  # an index from before the text column, opened read-only
            return None
        return row[0] if row else None

    def iter_passages(self, batch: int) -> Iterator[tuple[Passage, np.ndarray | None]]:
        query = f"SELECT {PASSAGE_COLUMNS}, embedding, embedding_dtype FROM passages WHERE row > ? ORDER BY row LIMIT ?"
        return iter_passage_rows(
            lambda last: self.db.execute(query, (last, batch)).fetchall(),
            lambda rows: [(passage, decode_vector(row[8], row[9])) for passage, row in zip(self.passages(rows), rows)],
        )

    def passages_by_rows(self, rows: Sequence[int]) -> dict[int, Passage]:
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        found = self.db.execute(f"SELECT {PASSAGE_COLUMNS} FROM passages WHERE row IN ({marks})", list(rows)).fetchall()
        return {row[0]: passage for passage, row in zip(self.passages(found), found)}

    def passages(self, rows: Sequence[Sequence[Any]]) -> list[Passage]:
        """Passages from their rows, each knowing where its file's pages break inside it."""
        sources = sorted({row[2] for row in rows if row[2] is not None})
        starts: dict[str, list[int]] = {}
        for first in range(0, len(sources), MAX_PARAMETERS):
            chunk = sources[first : first + MAX_PARAMETERS]
            marks = ",".join("?" * len(chunk))
            starts.update((s, json.loads(p)) for s, p in self.db.execute(f"SELECT source, page_starts FROM files WHERE source IN ({marks})", chunk))
        return [passage_from_row(row, json.loads(row[7]), starts.get(row[2], ())) for row in rows]

    def rows_where(self, column: str, values: Sequence[str]) -> np.ndarray:
        rows: list[int] = []
        for start in range(0, len(values), MAX_PARAMETERS):
            chunk = list(values[start : start + MAX_PARAMETERS])
            marks = ",".join("?" * len(chunk))
            rows += [r for (r,) in self.db.execute(f"SELECT row FROM passages WHERE {column} IN ({marks})", chunk)]
        return np.asarray(rows, dtype=np.int64)

    def search_text(self, query: str, top_k: int, sources: Sequence[str] | None = None) -> list[SearchHit]:
        """BM25 over the FTS5 table (score: higher is better), optionally only in `sources`."""
        terms = query_terms(query)
        if not terms or sources is not None and not sources:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        only = ""
        if sources is not None:  # json_each: any number of sources in one parameter
            only = " AND p.source IN (SELECT value FROM json_each(?))"
        rows = self.db.execute(
            f"SELECT {', '.join('p.' + c.strip() for c in PASSAGE_COLUMNS.split(','))}, -bm25(passages_fts) AS score "
            "FROM passages_fts JOIN passages p ON p.row = passages_fts.rowid "
            f"WHERE passages_fts MATCH ?{only} ORDER BY score DESC LIMIT ?",
            (match, *([json.dumps(list(sources))] if sources is not None else []), top_k),
        ).fetchall()
        return [SearchHit(passage, float(row[8])) for passage, row in zip(self.passages(rows), rows)]

    def integrity_problems(self) -> list[str]:
        return [] if self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok" else ["SQLite integrity check failed"]

    def table_problems(self) -> list[str]:
        """How the full-text table and the files table disagree with the passages."""
        problems = []
        fts = self.db.execute("SELECT count(*) FROM passages_fts").fetchone()[0]
        if fts != self.count():
            problems.append(f"full-text table has {fts} rows, passages {self.count()}")
        mismatched = self.db.execute(
            "SELECT f.source FROM files f LEFT JOIN passages p ON p.source = f.source GROUP BY f.source HAVING count(p.row) != f.passages"
        ).fetchall()
        return problems + [f"{source}: passage count differs from the files table" for (source,) in mismatched]

    def vector_rows(self) -> set[int]:
        return {r for (r,) in self.db.execute("SELECT row FROM passages WHERE embedding IS NOT NULL")}
