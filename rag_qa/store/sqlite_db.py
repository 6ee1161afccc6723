"""The FAISS store's source of truth: one SQLite database (WAL, synchronous=FULL) holding the
passages with their vectors, the files they came from (hash, page starts, text), an FTS5 table for
BM25, and a generation counter that every committed write bumps. Writes go through the facade's
transaction (`FaissStore._transaction`); this module only knows the tables."""

from __future__ import annotations

import heapq
import json
import math
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from rag_qa.errors import IndexCorruptError
from rag_qa.records import Document, Passage, SearchHit
from rag_qa.store.base import iter_passage_rows, passage_from_row, query_terms
from rag_qa.store.events import event_from_row, event_row
from rag_qa.store.sqlite_words import PassageWords

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state (key, value) VALUES ('generation', 0);
CREATE TABLE IF NOT EXISTS manifest_copy (id INTEGER PRIMARY KEY CHECK (id = 1), manifest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    source TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    page_starts TEXT NOT NULL,
    passages INTEGER NOT NULL,
    indexed_at REAL NOT NULL,
    text TEXT,
    groups TEXT NOT NULL DEFAULT '[]'
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
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
PASSAGE_COLUMNS = "row, id, source, text, page, char_start, char_end, meta"
MAX_PARAMETERS = 500  # stay under SQLite's bound-parameter limit
BM25_K1, BM25_B = 1.2, 0.75  # the constants of FTS5's bm25(), so a filtered search scores as FTS5 would
# per connection, with the index's tokenizer: a scratch full-text table that stems query words, and
# one holding the text of the passages a filtered search may read; read-only views of their postings
# (term, document, offset)
QUERY_TABLES = """
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_words USING fts5 (text, tokenize='porter unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_postings USING fts5vocab (temp, query_words, instance);
CREATE VIRTUAL TABLE IF NOT EXISTS temp.readable_words USING fts5 (text, tokenize='porter unicode61', content='', columnsize=0);
CREATE VIRTUAL TABLE IF NOT EXISTS temp.readable_postings USING fts5vocab (temp, readable_words, instance);
"""


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
            columns = {row[1] for row in connection.execute("PRAGMA table_info(files)")}
            if "text" not in columns:
                connection.execute("ALTER TABLE files ADD COLUMN text TEXT")  # indexes made before `show`
            if "groups" not in columns:
                connection.execute("ALTER TABLE files ADD COLUMN groups TEXT NOT NULL DEFAULT '[]'")  # before access groups
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute("SELECT count(*) FROM passages").fetchone()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"{path}: not a readable rag-qa database ({exc})") from None
    return connection


def saved_manifest(path: Path) -> dict[str, Any] | None:
    """The copy of the index's manifest kept in the database at `path` (None when there is none or
    the database cannot be read): what `rag-qa check --repair` restores a damaged manifest from."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT manifest FROM manifest_copy").fetchone()
        return json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError):
        return None


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


class PassageDatabase(PassageWords):
    """Queries and row-level writes on one SQLite connection (the caller serialises threads);
    the document frequency of words in `sqlite_words`."""

    def __init__(self, connection: sqlite3.Connection):
        self.db = connection
        # an index from before access groups, opened read-only, has no groups column: nothing has groups
        self.has_groups = "groups" in {row[1] for row in connection.execute("PRAGMA table_info(files)")}
        self.has_events = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone() is not None  # none before the events table, read-only
        self._query_tables = False
        self._readable_rows: tuple[int, ...] = ()  # whose text temp.readable_words holds now

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
        if self.db.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
            self.db.execute("ROLLBACK")

    def keep_manifest_copy(self, manifest: dict[str, Any]) -> None:
        """Keep the manifest's content here too (written only when it changed)."""
        text = json.dumps(manifest, sort_keys=True)
        if self.db.execute("SELECT manifest FROM manifest_copy").fetchone() != (text,):
            self.db.execute("INSERT OR REPLACE INTO manifest_copy (id, manifest) VALUES (1, ?)", (text,))

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
        """Add or update a file's row; its access groups stay as they were when `document.groups` is None."""
        groups = json.dumps(list(document.groups)) if document.groups is not None else None
        self.db.execute(
            "INSERT INTO files (source, content_hash, page_starts, passages, indexed_at, text, groups) VALUES (?, ?, ?, ?, ?, ?, coalesce(?, '[]'))"
            " ON CONFLICT (source) DO UPDATE SET content_hash = excluded.content_hash, page_starts = excluded.page_starts,"
            " passages = excluded.passages, indexed_at = excluded.indexed_at, text = excluded.text, groups = coalesce(?, files.groups)",
            (document.source, document.content_hash, json.dumps(list(document.page_starts)), passages, time.time(), document.text, groups, groups),
        )

    def rename_source(self, old: str, new: str) -> int:
        """Re-point a file's row and passages to a new name (ids follow the name); vectors stay."""
        rows = self.db.execute("SELECT row, char_start, text FROM passages WHERE source = ?", (old,)).fetchall()
        self.db.executemany("UPDATE passages SET source = ?, id = ? WHERE row = ?", [(new, Passage.make_id(new, start, text), row) for row, start, text in rows])
        self.db.execute("UPDATE files SET source = ? WHERE source = ?", (new, old))
        return len(rows)

    def set_groups(self, source: str, groups: Sequence[str], expected: Sequence[str] | None = None) -> bool:  # `expected`: only while it has those
        held = json.dumps(list(expected)) if expected is not None else None
        return self.db.execute("UPDATE files SET groups = ? WHERE source = ? AND (? IS NULL OR groups = ?)", (json.dumps(list(groups)), source, held, held)).rowcount > 0

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

    # ----------------------------------------------------------------- the audit log's events (append-only)
    def append_event(self, event: dict[str, Any]) -> int:
        """Add one event; inside a transaction it commits or rolls back with the change, outside
        one the single INSERT is its own. Returns its id."""
        cursor = self.db.execute("INSERT INTO events (at, who, action, target, details) VALUES (?, ?, ?, ?, ?)", event_row(event))
        return int(cursor.lastrowid)

    def import_legacy_events(self, events: Sequence[dict[str, Any]]) -> int:
        """Add events moved from the old log (inside a transaction), skipping those already moved
        (their "imported_from" name is in the table: a move interrupted before the files went)."""
        names = json.dumps([e["details"]["imported_from"] for e in events])
        moved = {n for (n,) in self.db.execute(
            "SELECT json_extract(details, '$.imported_from') FROM events WHERE json_extract(details, '$.imported_from') IN (SELECT value FROM json_each(?))", (names,)
        )}  # fmt: skip
        fresh = [e for e in events if e["details"]["imported_from"] not in moved]
        for event in fresh:
            self.append_event(event)
        return len(fresh)

    def events(self, last: int, before: int | None) -> list[dict[str, Any]]:
        """The `last` newest events older than id `before`, oldest first: one query that walks the
        primary key backwards and stops at the limit, however long the log."""
        if not self.has_events:
            return []
        rows = self.db.execute(
            "SELECT id, at, who, action, target, details FROM events WHERE id < ? ORDER BY id DESC LIMIT ?", (before if before is not None else 2**63 - 1, last)
        ).fetchall()
        return [event_from_row(row) for row in reversed(rows)]

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
        groups = "groups" if self.has_groups else "'[]'"
        cursor = self.db.execute(f"SELECT source, content_hash, page_starts, passages, indexed_at, {groups} FROM files ORDER BY source")
        return [
            {"source": s, "content_hash": h, "page_starts": json.loads(p), "passages": n, "indexed_at": t, "groups": json.loads(g)}
            for s, h, p, n, t, g in cursor
        ]

    def visible_sources(self, groups: Sequence[str]) -> list[str]:
        """The files a holder of `groups` may read: those without groups and those sharing one."""
        if not self.has_groups:
            return [s for (s,) in self.db.execute("SELECT source FROM files ORDER BY source")]
        cursor = self.db.execute(
            "SELECT source FROM files WHERE groups = '[]' OR EXISTS "
            "(SELECT 1 FROM json_each(files.groups) g WHERE g.value IN (SELECT value FROM json_each(?))) ORDER BY source",
            (json.dumps(list(groups)),),
        )
        return [s for (s,) in cursor]

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
        if sources is not None:
            return self._search_text_within(terms, top_k, sources)
        rows = self.db.execute(
            f"SELECT {', '.join('p.' + c.strip() for c in PASSAGE_COLUMNS.split(','))}, -bm25(passages_fts) AS score "
            "FROM passages_fts JOIN passages p ON p.row = passages_fts.rowid WHERE passages_fts MATCH ? ORDER BY score DESC LIMIT ?",
            (" OR ".join(f'"{t}"' for t in terms), top_k),
        ).fetchall()
        return [SearchHit(passage, float(row[8])) for passage, row in zip(self.passages(rows), rows)]

    def _search_text_within(self, terms: list[str], top_k: int, sources: Sequence[str]) -> list[SearchHit]:
        """BM25 over the passages of `sources` as if the index held nothing else. FTS5's bm25()
        takes document frequencies and the average length from the whole table, so the passages a
        filter hides would still shape the scores (and hint at what they contain); and any read of
        the table's postings (even seeking to readable rows) costs more the more hidden passages
        use a query word, which a caller could time. So everything comes from the readable rows
        alone: their lengths (FTS5's docsize table) and their words (`_readable_words`); the work
        grows with what the caller may read, never with what it may not."""
        lengths = self._readable_words(sources)
        if not lengths:
            return []
        average, scores = sum(lengths.values()) / len(lengths), defaultdict(float)
        for term in [tokens[0] for tokens in self._tokens(terms) if tokens]:  # one per query word, duplicates included, as FTS5 scores them
            counts = self.db.execute("SELECT doc, count(*) FROM temp.readable_postings WHERE term = CAST(? AS TEXT) GROUP BY doc", (term,)).fetchall()
            idf = max(math.log((len(lengths) - len(counts) + 0.5) / (len(counts) + 0.5)), 1e-6)
            for row, n in counts:
                scores[row] += idf * n * (BM25_K1 + 1) / (n + BM25_K1 * (1 - BM25_B + BM25_B * lengths[row] / average))
        best = heapq.nlargest(top_k, ((score, -row) for row, score in scores.items()))
        found = self.passages_by_rows([-row for _, row in best])
        return [SearchHit(found[-row], score) for score, row in best]

    def _readable_words(self, sources: Sequence[str]) -> dict[int, int]:
        """The token count of each passage of `sources` (by row), with their text tokenised into
        temp.readable_words. The table is kept for the next search with the same rows (a key's
        searches repeat), refilled when the rows differ: both depend only on the readable rows."""
        self._make_query_tables()
        lengths = {
            row: _varint(size)
            for row, size in self.db.execute(
                "SELECT d.id, d.sz FROM passages p JOIN passages_fts_docsize d ON d.id = p.row WHERE p.source IN (SELECT value FROM json_each(?))",
                (json.dumps(list(sources)),),
            )
        }
        rows = tuple(sorted(lengths))
        if rows != self._readable_rows:
            self._readable_rows = ()
            self.db.execute("INSERT INTO temp.readable_words (readable_words) VALUES ('delete-all')")
            self.db.execute("INSERT INTO temp.readable_words (rowid, text) SELECT row, text FROM passages WHERE row IN (SELECT value FROM json_each(?))", (json.dumps(rows),))
            self._readable_rows = rows if not self.db.in_transaction else ()  # a rollback would undo the fill
        return lengths

    def _make_query_tables(self) -> None:
        if not self._query_tables:
            for statement in QUERY_TABLES.strip().splitlines():  # temp tables: a read-only connection may make them too
                self.db.execute(statement)
            self._query_tables = True

    def _tokens(self, texts: Sequence[str]) -> list[list[bytes]]:
        """The tokens of each text as the index's tokenizer stores them (lower case, no accents,
        Porter stem), as bytes: FTS5 cuts a very long token inside a UTF-8 character, which no
        str can hold (compare them with `term = CAST(? AS TEXT)`)."""
        self._make_query_tables()
        self.db.execute("DELETE FROM temp.query_words")
        self.db.executemany("INSERT INTO temp.query_words (rowid, text) VALUES (?, ?)", enumerate(texts))
        tokens: list[list[bytes]] = [[] for _ in texts]
        for text, term in self.db.execute("SELECT doc, CAST(term AS BLOB) FROM temp.query_postings ORDER BY doc, offset"):
            tokens[text].append(term)
        return tokens

    def rebuild_full_text(self) -> None:
        """Fill the FTS5 table again from the passages (inside a transaction)."""
        self.db.execute("INSERT INTO passages_fts (passages_fts) VALUES ('rebuild')")

    def integrity_problems(self) -> list[str]:
        return [] if self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok" else ["SQLite integrity check failed"]

    def table_problems(self) -> list[str]:
        """How the full-text table and the files table disagree with the passages."""
        problems = []
        fts = self.db.execute("SELECT count(*) FROM passages_fts_docsize").fetchone()[0]  # rows indexed (count(*) reads the content)
        if fts != self.count():
            problems.append(f"full-text table has {fts} rows, passages {self.count()}")
        try:
            self.db.execute("INSERT INTO passages_fts (passages_fts, rank) VALUES ('integrity-check', 1)")  # against the passages too
        except sqlite3.DatabaseError as exc:
            if "readonly" not in str(exc):  # a read-only connection cannot run it; the count above still can
                problems.append(f"the full-text index is damaged ({exc})")
        mismatched = self.db.execute(
            "SELECT f.source FROM files f LEFT JOIN passages p ON p.source = f.source GROUP BY f.source HAVING count(p.row) != f.passages"
        ).fetchall()
        return problems + [f"{source}: passage count differs from the files table" for (source,) in mismatched]

    def vector_rows(self) -> set[int]:
        return {r for (r,) in self.db.execute("SELECT row FROM passages WHERE embedding IS NOT NULL")}


def _varint(blob: bytes) -> int:
    """The first SQLite varint of `blob` (big-endian, 7 bits a byte): FTS5 keeps a row's token
    count this way in its docsize table."""
    value = 0
    for i, byte in enumerate(blob[:9]):
        if i == 8:
            return (value << 8) | byte
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value
