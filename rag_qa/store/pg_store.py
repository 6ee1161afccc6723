"""The PostgreSQL + pgvector store: the same behaviour as the FAISS store, on a database server
that many processes can write to and many users can read from at once.

Tables live in one PostgreSQL schema per index (`postgresql://host/db#name`, default "rag_qa"):
`meta` (schema version, settings, embedding model and dimension, saved documents), `files` and
`passages`, whose `embedding vector(D)` column has an HNSW index (inner product) and whose
generated `tsv` column has a GIN full-text index. Every write is one transaction; writers of the
same file serialise on an advisory lock, so re-indexing is idempotent even when processes race.
The first write fixes the dimension and builds the HNSW index, under a row lock on `meta`.

    >>> store = PgStore.open("postgresql://localhost/rag#handbook", IndexSettings(), dimension=384)
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from rag_qa.config import IndexSettings
from rag_qa.errors import ChangedMeanwhile, RagQAError
from rag_qa.records import Document, Passage, SearchHit
from rag_qa.store.base import (  # what both stores share
    EXACT_FILTER_LIMIT, DuplicatePassageError, StoreBase, StoreInfo, check_compatible, check_dimension, check_policy, check_top_k,
    check_vector_count, iter_passage_rows, passage_from_row, query_terms, unique_by_id,
)  # fmt: skip
from rag_qa.store.pg_events import PgEvents
from rag_qa.store.pg_originals import PgOriginals
from rag_qa.store.pg_rate import PgRates
from rag_qa.store.pg_retry import ServerWatch, retried
from rag_qa.store.pg_schema import exact_copy, fix_dimension, has_column, read_or_create, redact, split_url, stored_vector
from rag_qa.store.pg_words import PgWords

POOL_SIZE = 8
PASSAGE_COLUMNS = "row, id, source, text, page, char_start, char_end, meta"


class PgStore(PgOriginals, StoreBase, PgEvents, PgRates, PgWords):  # PgOriginals first: its `original` over StoreBase's none
    """Passages, vectors and full text in PostgreSQL. Open with `PgStore.open(url)`; thread-safe
    (a connection pool), and any number of processes may read and write at once."""

    recovered = False  # the database's own recovery keeps it consistent; nothing to rebuild

    def __init__(self, url: str, schema: str, make_pool: Callable[[], Any], manifest: dict[str, Any], read_only: bool, has_groups: bool = True):
        self.url, self.schema, self.manifest = url, schema, manifest
        self._make_pool, self._pool = make_pool, make_pool()
        self._server = ServerWatch(url, redact(url), on_back=self._renew_pool)
        self.path = f"{redact(url)}#{schema}"
        self.settings = IndexSettings.from_dict(manifest["settings"])
        self._read_only = read_only
        self._groups = "groups" if has_groups else "ARRAY[]::text[]"  # an older index opened read-only has none

    # ----------------------------------------------------------------- opening and closing
    @classmethod
    def open(
        cls, url: str, settings: IndexSettings | None = None, dimension: int | None = None, read_only: bool = False,
        new_settings: IndexSettings | None = None,
    ) -> "PgStore":  # fmt: skip
        """Open the index in `url` (schema from the fragment), creating tables on first use.

        Raises IndexMismatchError for another embedding model or dimension, IndexCorruptError for
        a schema written by a newer rag-qa, RagQAError when the server cannot be reached.
        """
        import psycopg
        from pgvector.psycopg import register_vector
        from psycopg_pool import ConnectionPool

        connection_url, schema = split_url(url)
        try:
            with psycopg.connect(connection_url, autocommit=True) as connection:
                manifest = read_or_create(connection, schema, settings or new_settings, dimension, read_only)
                has_groups = has_column(connection, schema, "files", "groups")
        except psycopg.OperationalError as exc:
            raise RagQAError(f"cannot connect to PostgreSQL at {redact(connection_url)}: {str(exc).strip()}") from None
        check_compatible(f"{redact(connection_url)}#{schema}", manifest, settings, dimension)
        options = "-c default_transaction_read_only=on" if read_only else None
        make_pool = functools.partial(
            ConnectionPool, connection_url, min_size=1, max_size=POOL_SIZE, configure=register_vector, open=True, check=ConnectionPool.check_connection,
            kwargs={"options": options} if options else {}, timeout=10,
        )  # fmt: skip  (check: a connection broken by a server restart is replaced before use)
        return cls(connection_url, schema, make_pool, manifest, read_only, has_groups)

    def close(self) -> None:
        self._pool.close()

    def _renew_pool(self) -> None:
        """A fresh pool once the server is back: the old one may be backing off between reconnection
        attempts for as long as the server was away."""
        old, self._pool = self._pool, self._make_pool()
        old.close(timeout=0)

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def dimension(self) -> int | None:
        return self.manifest["embedding"]["dimension"]

    def flush(self) -> None:
        """Nothing to do: every write is durable when its transaction commits."""

    # ----------------------------------------------------------------- SQL helpers
    def _sql(self, text: str) -> Any:
        """`text` with `{s}` standing for this index's schema, safely quoted."""
        from psycopg import sql

        return sql.SQL(text.replace("{s}", "{schema}")).format(schema=sql.Identifier(self.schema))

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._server.reachable(), self._pool.connection() as connection:
            yield connection

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        if self._read_only:
            raise RagQAError(f"{self.path} is open read-only")
        with self._server.reachable(), self._pool.connection() as connection, connection.transaction():
            yield connection

    def _lock_sources(self, db: Any, sources: Sequence[str]) -> None:
        """Writers of the same file take turns (in sorted order, so they never deadlock)."""
        for source in sorted(set(sources)):
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", (self.schema, source))

    def _set_dimension(self, db: Any, vectors: Any) -> None:
        size = check_dimension(self.path, self.dimension, vectors)
        if self.dimension is None and size is not None:
            fix_dimension(db, self.schema, self.manifest, size)

    def _insert(self, db: Any, passages: Sequence[Passage], vectors: Sequence[Any]) -> None:
        with db.cursor() as cursor:
            cursor.executemany(
                self._sql(
                    "INSERT INTO {s}.passages (id, source, text, page, char_start, char_end, meta, embedding, embedding_f64)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ),
                [
                    (p.id, p.source, p.text, p.page, p.char_start, p.char_end, json.dumps(p.meta),
                     None if v is None else np.asarray(v, dtype=np.float32), exact_copy(v))
                    for p, v in zip(passages, vectors)
                ],
            )  # fmt: skip

    # ----------------------------------------------------------------- writing
    @retried
    def replace_files(self, files: Sequence[tuple[Document, list[Passage]]], vectors: np.ndarray, event: dict[str, Any] | None = None) -> int:
        """Atomically store new versions of files: each document (its text, hash and page starts)
        with its passages, `vectors` one row per passage in order; old passages of those files are
        removed. `event` (the audit log's) is appended in the same transaction."""
        total = sum(len(passages) for _, passages in files)
        check_vector_count(total, len(vectors))
        with self._transaction() as db:
            self._set_dimension(db, vectors[:1])
            self._lock_sources(db, [document.source for document, _ in files])
            first = 0
            for document, passages in files:
                db.execute(self._sql("DELETE FROM {s}.passages WHERE source = %s"), (document.source,))
                self._insert(db, passages, vectors[first : first + len(passages)])
                first += len(passages)
                groups = list(document.groups) if document.groups is not None else None  # None: keep the file's groups
                db.execute(
                    self._sql(
                        "INSERT INTO {s}.files (source, content_hash, page_starts, passages, indexed_at, text, groups)"
                        " VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s::text[], ARRAY[]::text[]))"
                        " ON CONFLICT (source) DO UPDATE SET content_hash = EXCLUDED.content_hash, page_starts = EXCLUDED.page_starts,"
                        " passages = EXCLUDED.passages, indexed_at = EXCLUDED.indexed_at, text = EXCLUDED.text,"
                        " groups = coalesce(%s::text[], {s}.files.groups)"
                    ),
                    (document.source, document.content_hash, json.dumps(list(document.page_starts)), len(passages), time.time(), document.text, groups, groups),
                )
                self._keep_original(db, document)
            if event is not None:
                self._append_event(db, event)
        return total

    @retried
    def delete_source(self, source: str, event: dict[str, Any] | None = None, expected: Sequence[str] | None = None) -> int:
        """Remove a file and all its passages; returns how many passages were removed. `event` is
        appended in the same transaction, when the file was there; with `expected`, ChangedMeanwhile
        unless the file still has exactly those groups (checked on the locked row)."""
        with self._transaction() as db:
            self._lock_sources(db, [source])
            held = "SELECT 1 FROM {s}.files WHERE source = %s AND groups = %s::text[] FOR UPDATE"
            if expected is not None and db.execute(self._sql(held), (source, list(expected))).fetchone() is None:
                raise ChangedMeanwhile(f"{source} changed meanwhile; look again and retry")
            removed = db.execute(self._sql("DELETE FROM {s}.passages WHERE source = %s"), (source,)).rowcount
            indexed = db.execute(self._sql("DELETE FROM {s}.files WHERE source = %s"), (source,)).rowcount
            if event is not None and (indexed or removed):
                self._append_event(db, event)
        return removed

    def write(self, passages: Sequence[Passage], vectors: Sequence[Any], policy: str = "fail") -> int:
        """Write passages by id with a duplicate policy ("fail", "skip" or "overwrite").
        Returns how many were written. With "fail", nothing is written if any id exists."""
        import psycopg

        check_policy(policy)
        check_vector_count(len(passages), len(vectors))
        try:
            with self._transaction() as db:
                self._set_dimension(db, vectors)
                kept = unique_by_id(passages, vectors, policy)
                ids = list(kept)
                existing = {i for (i,) in db.execute(self._sql("SELECT id FROM {s}.passages WHERE id = ANY(%s) FOR UPDATE"), (ids,))}
                if existing and policy == "fail":
                    raise DuplicatePassageError(f"a passage with id {sorted(existing)[0]!r} already exists")
                if policy == "skip":
                    kept = {i: pv for i, pv in kept.items() if i not in existing}
                elif existing:
                    db.execute(self._sql("DELETE FROM {s}.passages WHERE id = ANY(%s)"), (sorted(existing),))
                self._insert(db, [p for p, _ in kept.values()], [v for _, v in kept.values()])
        except psycopg.errors.UniqueViolation as exc:  # another writer inserted the same id meanwhile
            raise DuplicatePassageError(f"a passage id was written concurrently ({exc.diag.message_detail})") from None
        return len(kept)

    @retried
    def delete_ids(self, ids: Sequence[str]) -> int:
        """Remove passages by id (unknown ids are ignored); returns how many were removed."""
        with self._transaction() as db:
            return db.execute(self._sql("DELETE FROM {s}.passages WHERE id = ANY(%s)"), (list(ids),)).rowcount

    @retried
    def update_meta(self, updates: dict[str, dict[str, Any]]) -> int:
        """Replace the metadata of passages by id: {id: new_meta}. Returns how many changed."""
        with self._transaction() as db:
            return sum(
                db.execute(self._sql("UPDATE {s}.passages SET meta = %s WHERE id = %s"), (json.dumps(meta), pid)).rowcount
                for pid, meta in updates.items()
            )

    @retried
    def rename_source(self, old: str, new: str) -> int:
        """A moved file: its passages and file row take the new name (passage ids follow it),
        keeping their vectors, in one transaction; returns how many passages moved."""
        with self._transaction() as db:
            self._lock_sources(db, [old, new])
            rows = db.execute(self._sql("SELECT row, char_start, text FROM {s}.passages WHERE source = %s"), (old,)).fetchall()
            with db.cursor() as cursor:
                cursor.executemany(
                    self._sql("UPDATE {s}.passages SET source = %s, id = %s WHERE row = %s"),
                    [(new, Passage.make_id(new, start, text), row) for row, start, text in rows],
                )
            db.execute(self._sql("UPDATE {s}.files SET source = %s WHERE source = %s"), (new, old))
        return len(rows)

    @retried
    def set_groups(self, source: str, groups: Sequence[str], event: dict[str, Any] | None = None, expected: Sequence[str] | None = None) -> bool:
        """Give an indexed file these access groups (none: every key may read it), without
        re-embedding; False when `source` is not indexed. `event` is appended in the same
        transaction, when the file is indexed."""
        with self._transaction() as db:
            held = list(expected) if expected is not None else None  # only while it has exactly those
            update = "UPDATE {s}.files SET groups = %s WHERE source = %s AND (%s::text[] IS NULL OR groups = %s::text[])"
            changed = db.execute(self._sql(update), (list(groups), source, held, held)).rowcount > 0
            if changed and event is not None:
                self._append_event(db, event)
            return changed

    def repair(self) -> list[str]:
        """Nothing to rebuild: PostgreSQL keeps the table, its full-text column and HNSW index consistent."""
        raise RagQAError(f"{self.path}: PostgreSQL keeps this index consistent itself; for damage use its own tools (REINDEX, a backup)")

    def backup(self, target: str | os.PathLike[str]) -> list[str]:
        raise RagQAError(f"{self.path}: back up a PostgreSQL index with pg_dump (the schema {self.schema!r} holds it all)")

    def clear(self) -> None:
        """Remove every passage and file."""
        with self._transaction() as db:
            db.execute(self._sql("DELETE FROM {s}.passages"))
            db.execute(self._sql("DELETE FROM {s}.files"))

    @retried
    def write_metadata(self, name: str, data: dict[str, Any], event: dict[str, Any] | None = None) -> str:
        """Keep small JSON metadata with the index under `name` (such as the fitted scoring); returns
        where. `event` (a key created or revoked) is appended in the same transaction."""
        with self._transaction() as db:
            db.execute(
                self._sql("INSERT INTO {s}.meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"),
                (f"document:{name}", json.dumps(data)),
            )
            if event is not None:
                self._append_event(db, event)
        return f"{self.path} (meta {name!r})"

    # ----------------------------------------------------------------- reading
    def read_metadata(self, name: str) -> dict[str, Any] | None:
        with self._connection() as db:
            row = db.execute(self._sql("SELECT value FROM {s}.meta WHERE key = %s"), (f"document:{name}",)).fetchone()
        return row[0] if row else None

    def metadata_names(self, prefix: str) -> list[str]:
        """The names of the metadata saved with `write_metadata` that start with `prefix`, sorted."""
        with self._connection() as db:
            rows = db.execute(self._sql("SELECT key FROM {s}.meta WHERE starts_with(key, %s) ORDER BY key"), (f"document:{prefix}",)).fetchall()
        return [row[0].removeprefix("document:") for row in rows]

    def count(self) -> int:
        with self._connection() as db:
            return int(db.execute(self._sql("SELECT count(*) FROM {s}.passages")).fetchone()[0])

    def file_hash(self, source: str) -> str | None:
        """Content hash the file was indexed with, or None if it is not indexed."""
        with self._connection() as db:
            row = db.execute(self._sql("SELECT content_hash FROM {s}.files WHERE source = %s"), (source,)).fetchone()
        return row[0] if row else None

    def files(self) -> list[dict[str, Any]]:
        """Indexed files with their hash, page starts, passage count and access groups."""
        with self._connection() as db:
            rows = db.execute(self._sql(f"SELECT source, content_hash, page_starts, passages, indexed_at, {self._groups} FROM {{s}}.files ORDER BY source")).fetchall()
        return [{"source": s, "content_hash": h, "page_starts": p, "passages": n, "indexed_at": t, "groups": list(g)} for s, h, p, n, t, g in rows]

    def visible_sources(self, groups: Sequence[str]) -> list[str]:
        """The indexed files a holder of `groups` may read: those without access groups and
        those with at least one of `groups`."""
        with self._connection() as db:
            rows = db.execute(
                self._sql(f"SELECT source FROM {{s}}.files WHERE cardinality({self._groups}) = 0 OR {self._groups} && %s::text[] ORDER BY source"),
                (list(groups),),
            ).fetchall()
        return [row[0] for row in rows]

    def page_starts(self, source: str) -> tuple[int, ...]:
        with self._connection() as db:
            row = db.execute(self._sql("SELECT page_starts FROM {s}.files WHERE source = %s"), (source,)).fetchone()
        return tuple(row[0]) if row else ()

    def document_text(self, source: str) -> str | None:
        """The text that the file's passage and answer offsets index, or None when the file is not
        indexed (or was indexed before rag-qa kept the text)."""
        with self._connection() as db:
            row = db.execute(self._sql("SELECT text FROM {s}.files WHERE source = %s"), (source,)).fetchone()
        return row[0] if row else None

    def iter_passages(self, batch: int = 1000) -> Iterator[tuple[Passage, np.ndarray | None]]:
        """Every passage with its vector, in insertion order."""
        query = self._sql(f"SELECT {PASSAGE_COLUMNS}, embedding, embedding_f64 FROM {{s}}.passages WHERE row > %s ORDER BY row LIMIT %s")

        def fetch_after(last: int) -> list[Any]:
            with self._connection() as db:
                return db.execute(query, (last, batch)).fetchall()

        return iter_passage_rows(fetch_after, lambda rows: [(passage, stored_vector(row[8], row[9])) for passage, row in zip(self._passages(rows), rows)])

    def search_many(
        self, queries: np.ndarray, top_k: int = 10, sources: Sequence[str] | None = None, ids: Sequence[str] | None = None
    ) -> list[list[SearchHit]]:
        """`search` for a batch of queries over one connection. HNSW scans iteratively, so
        filters still return `top_k` hits when enough passages match; a search among a few given
        `ids` scores each of them (no approximate index: hybrid retrieval asks how close the
        passages only BM25 found are, and an index scan past its limit would drop some)."""
        check_top_k(top_k)
        if self.dimension is None:
            return [[] for _ in queries]
        conditions = ["embedding IS NOT NULL"]
        params: list[Any] = []
        if sources is not None:
            conditions.append("source = ANY(%s)")
            params.append(list(sources))
        if ids is not None:
            conditions.append("id = ANY(%s)")
            params.append(list(ids))
        exact = ids is not None and len(ids) <= EXACT_FILTER_LIMIT
        select = f"SELECT {PASSAGE_COLUMNS}, -(embedding <#> %s) AS score FROM {{s}}.passages WHERE {' AND '.join(conditions)}"
        query = self._sql(select if exact else select + " ORDER BY embedding <#> %s LIMIT %s")
        ef_search = max(self.settings.vector_index.hnsw_ef_search, top_k)
        with self._connection() as db, db.transaction():
            db.execute(self._sql(f"SET LOCAL hnsw.ef_search = {int(ef_search)}"))
            db.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            vectors = np.asarray(queries, dtype=np.float32)
            if exact:
                found = [sorted(db.execute(query, (vector, *params)).fetchall(), key=lambda row: -row[8])[:top_k] for vector in vectors]
            else:
                found = [db.execute(query, (vector, *params, vector, top_k)).fetchall() for vector in vectors]
        passages = iter(self._passages([row for rows in found for row in rows]))  # one page-starts lookup for the batch
        return [[SearchHit(next(passages), float(row[8])) for row in rows] for rows in found]

    def search_text(self, query: str, top_k: int = 10, sources: Sequence[str] | None = None) -> list[SearchHit]:
        """Full-text retrieval: any of the query's words (English stemming), ranked by
        PostgreSQL's cover density with length normalisation (score: higher is better),
        optionally only in `sources`."""
        terms = query_terms(query)
        if not terms:
            return []
        only = " AND p.source = ANY(%s)" if sources is not None else ""
        with self._connection() as db:
            rows = db.execute(
                self._sql(
                    f"SELECT {', '.join('p.' + c.strip() for c in PASSAGE_COLUMNS.split(','))}, ts_rank_cd(p.tsv, q, 1) AS score "
                    f"FROM {{s}}.passages p, to_tsquery('english', %s) q WHERE p.tsv @@ q{only} ORDER BY score DESC, p.row LIMIT %s"
                ),
                (" | ".join(terms), *([list(sources)] if sources is not None else []), top_k),
            ).fetchall()
        return [SearchHit(passage, float(row[8])) for passage, row in zip(self._passages(rows), rows)]

    def _passages(self, rows: Sequence[Sequence[Any]]) -> list[Passage]:
        """Passages from their rows, each knowing where its file's pages break inside it."""
        sources = sorted({row[2] for row in rows if row[2] is not None})
        with self._connection() as db:
            starts = dict(db.execute(self._sql("SELECT source, page_starts FROM {s}.files WHERE source = ANY(%s)"), (sources,)).fetchall()) if sources else {}
        return [passage_from_row(row, row[7], starts.get(row[2], ())) for row in rows]

    # ----------------------------------------------------------------- reporting
    def info(self) -> StoreInfo:
        embedding = self.manifest["embedding"]
        with self._connection() as db:
            files, passages, vectors = db.execute(
                self._sql("SELECT (SELECT count(*) FROM {s}.files), count(*), count(embedding) FROM {s}.passages")
            ).fetchone()
        return StoreInfo(
            path=self.path, files=files, passages=passages, vectors=vectors, embedding_model=embedding["model"],
            embedding_revision=embedding["revision"], dimension=embedding["dimension"],
            index_type="flat" if self.settings.vector_index.index_type == "flat" else "hnsw",
            format_version=self.manifest["format_version"],
        )  # fmt: skip

    def check(self) -> list[str]:
        """Consistency problems (an empty list means consistent): the files table against the
        passages, the full-text column, and the HNSW index once vectors have a dimension."""
        problems = []
        with self._connection() as db:
            mismatched = db.execute(
                self._sql(
                    "SELECT f.source FROM {s}.files f LEFT JOIN {s}.passages p ON p.source = f.source "
                    "GROUP BY f.source, f.passages HAVING count(p.row) != f.passages"
                )
            ).fetchall()
            problems += [f"{source}: passage count differs from the files table" for (source,) in mismatched]
            missing_text = db.execute(self._sql("SELECT count(*) FROM {s}.passages WHERE tsv IS NULL")).fetchone()[0]
            if missing_text:
                problems.append(f"{missing_text} passages have no full-text vector")
            has_hnsw = db.execute("SELECT to_regclass(%s)", (f"{self.schema}.passages_hnsw",)).fetchone()[0] is not None
        if self.dimension is not None and self.settings.vector_index.index_type != "flat" and not has_hnsw:
            problems.append("the HNSW index on passages.embedding is missing")
        return problems
