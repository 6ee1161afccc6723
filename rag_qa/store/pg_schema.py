"""Creating, reading and upgrading a PostgreSQL index's schema (tables, manifest, dimension), how a
vector is kept in it, and the index URLs: what `PgStore.open` does before the first query."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
from urllib.parse import urldefrag, urlsplit, urlunsplit

from rag_qa.config import IndexSettings
from rag_qa.errors import ConfigError, IndexCorruptError
from rag_qa.store.base import new_manifest
from rag_qa.store.events import LEGACY_PREFIX, event_row, legacy_event

SCHEMA_VERSION = 1
DEFAULT_SCHEMA = "rag_qa"
URL_SCHEMES = ("postgresql://", "postgres://")
TABLES = """
CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.files (
    source text PRIMARY KEY,
    content_hash text NOT NULL,
    page_starts jsonb NOT NULL,
    passages integer NOT NULL,
    indexed_at double precision NOT NULL,
    text text,
    groups text[] NOT NULL DEFAULT ARRAY[]::text[]
);
CREATE TABLE IF NOT EXISTS {s}.passages (
    row bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    source text,
    text text NOT NULL,
    page integer,
    char_start integer NOT NULL,
    char_end integer NOT NULL,
    meta jsonb NOT NULL,
    embedding vector,
    embedding_f64 bytea,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
);
CREATE INDEX IF NOT EXISTS passages_by_source ON {s}.passages (source);
CREATE INDEX IF NOT EXISTS passages_full_text ON {s}.passages USING gin (tsv);
"""
# uploaded originals (`pg_originals`): a row follows its file, deleted or renamed with it
ORIGINALS = """
CREATE TABLE IF NOT EXISTS {s}.originals (
    source text PRIMARY KEY REFERENCES {s}.files (source) ON DELETE CASCADE ON UPDATE CASCADE,
    content bytea NOT NULL
);
"""
# the audit log: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE); `id` grows in the
# order events commit (appenders take turns at the end of their transaction: `PgEvents`)
EVENTS = """
CREATE TABLE IF NOT EXISTS {s}.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at double precision NOT NULL,
    who text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE OR REPLACE FUNCTION {s}.events_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
DROP TRIGGER IF EXISTS events_append_only ON {s}.events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.events_append_only();
"""


def is_database_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def split_url(url: str) -> tuple[str, str]:
    """(connection URL, schema name): the URL fragment names the schema that holds the index."""
    connection, schema = urldefrag(url)
    schema = schema or DEFAULT_SCHEMA
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ConfigError(f"index name {schema!r} in {url!r} must be a lower-case SQL identifier (letters, digits, _)")
    return connection, schema


def redact(url: str) -> str:
    """The URL without its password, for messages and `info`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def read_or_create(connection: Any, schema: str, settings: IndexSettings | None, dimension: int | None, read_only: bool) -> dict[str, Any]:
    from psycopg import sql

    exists = connection.execute("SELECT to_regclass(%s)", (f"{schema}.meta",)).fetchone()[0] is not None
    if not exists and read_only:
        raise IndexCorruptError(f"no rag-qa index in schema {schema!r}; build one with `rag-qa index --index URL#{schema}`")
    if not exists:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext('rag_qa:create'))")  # CREATE EXTENSION races across schemas too
            connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            connection.execute(_with_schema(TABLES, schema))
            connection.execute(_with_schema(EVENTS, schema))
            connection.execute(_with_schema(ORIGINALS, schema))
            manifest = new_manifest(settings, None, SCHEMA_VERSION)  # the dimension is fixed below, with its index
            connection.execute(
                sql.SQL("INSERT INTO {}.meta (key, value) VALUES ('manifest', %s) ON CONFLICT (key) DO NOTHING").format(sql.Identifier(schema)),
                (json.dumps(manifest),),
            )
    row = connection.execute(sql.SQL("SELECT value FROM {}.meta WHERE key = 'manifest'").format(sql.Identifier(schema))).fetchone()
    if row is None:
        raise IndexCorruptError(f"schema {schema!r} has a meta table without a manifest; it is not a rag-qa index")
    manifest = row[0]
    if manifest.get("format_version") != SCHEMA_VERSION:
        raise IndexCorruptError(
            f"schema {schema!r} is at rag-qa schema version {manifest.get('format_version')}; this rag-qa reads version "
            f"{SCHEMA_VERSION}. Upgrade rag-qa or re-index into another schema"
        )
    if not read_only:
        _add_columns(connection, schema)
        _add_events(connection, schema)
        _add_originals(connection, schema)
    if manifest["embedding"]["dimension"] is None and dimension is not None and not read_only:
        with connection.transaction():
            fix_dimension(connection, schema, manifest, dimension)
    return manifest

def has_column(connection: Any, schema: str, table: str, column: str) -> bool:
    found = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s AND column_name = %s)",
        (schema, table, column),
    )
    return bool(found.fetchone()[0])


def _add_columns(connection: Any, schema: str) -> None:
    """Columns that older indexes lack: the document text (before `show`), the access groups."""
    from psycopg import sql

    for column, kind in (("text", "text"), ("groups", "text[] NOT NULL DEFAULT ARRAY[]::text[]")):
        if not has_column(connection, schema, "files", column):
            with connection.transaction():
                connection.execute(sql.SQL(f"ALTER TABLE {{}}.files ADD COLUMN IF NOT EXISTS {column} {kind}").format(sql.Identifier(schema)))


def _add_originals(connection: Any, schema: str) -> None:
    """The originals table for indexes made before the service kept uploads in the store."""
    if connection.execute("SELECT to_regclass(%s)", (f"{schema}.originals",)).fetchone()[0] is None:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext('rag_qa:create'))")
            connection.execute(_with_schema(ORIGINALS, schema))


def _with_schema(statements: str, schema: str) -> Any:
    """`statements` with each `{s}` standing for `schema`, quoted; other braces stay as written."""
    from psycopg import sql

    first, *rest = statements.split("{s}")
    return sql.Composed([sql.SQL(first), *[piece for part in rest for piece in (sql.Identifier(schema), sql.SQL(part))]])


def _add_events(connection: Any, schema: str) -> None:
    """The events table for indexes made before it, and the old audit log (one `meta` row per
    event, "document:audit/...") moved into it: taken and removed in one transaction, so each
    entry moves once even when several processes open the index at the same time."""
    from psycopg import sql

    if connection.execute("SELECT to_regclass(%s)", (f"{schema}.events",)).fetchone()[0] is None:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext('rag_qa:create'))")
            connection.execute(_with_schema(EVENTS, schema))
    legacy = f"document:{LEGACY_PREFIX}"
    table = sql.Identifier(schema)
    if connection.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.meta WHERE starts_with(key, %s))").format(table), (legacy,)).fetchone()[0]:
        with connection.transaction():
            taken = connection.execute(sql.SQL("DELETE FROM {}.meta WHERE starts_with(key, %s) RETURNING key, value").format(table), (legacy,)).fetchall()
            with connection.cursor() as cursor:
                cursor.executemany(
                    sql.SQL("INSERT INTO {}.events (at, who, action, target, details) VALUES (%s, %s, %s, %s, %s)").format(table),
                    [event_row(legacy_event(key.removeprefix("document:"), value)) for key, value in sorted(taken)],
                )


def fix_dimension(db: Any, schema: str, manifest: dict[str, Any], dimension: int) -> dict[str, Any]:
    """Give the vector column its dimension and build the HNSW index (once, under a row lock)."""
    from psycopg import sql

    table = sql.Identifier(schema)
    current = db.execute(sql.SQL("SELECT value FROM {}.meta WHERE key = 'manifest' FOR UPDATE").format(table)).fetchone()[0]
    if current["embedding"]["dimension"] is not None:
        manifest.update(current)  # another process got there first
        return manifest
    current["embedding"]["dimension"] = dimension
    db.execute(sql.SQL("ALTER TABLE {}.passages ALTER COLUMN embedding TYPE vector({})").format(table, sql.Literal(dimension)))
    vector_settings = IndexSettings.from_dict(current["settings"]).vector_index
    if vector_settings.index_type != "flat":
        db.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS passages_hnsw ON {}.passages USING hnsw (embedding vector_ip_ops) WITH (m = {}, ef_construction = {})").format(
                table, sql.Literal(vector_settings.hnsw_m), sql.Literal(vector_settings.hnsw_ef_construction)
            )
        )
    db.execute(sql.SQL("UPDATE {}.meta SET value = %s WHERE key = 'manifest'").format(table), (json.dumps(current),))
    manifest.update(current)
    return manifest


def stored_vector(embedding: Any, exact: bytes | None) -> np.ndarray | None:
    """A passage's vector as stored: the exact float64 copy when there is one, else pgvector's float32."""
    if exact is not None:
        return np.frombuffer(exact, dtype=np.float64)
    if embedding is None:
        return None
    return np.asarray(embedding.to_numpy() if hasattr(embedding, "to_numpy") else embedding, dtype=np.float32)


def exact_copy(vector: Any) -> bytes | None:
    """pgvector keeps float32; float64 input (Haystack documents) is also kept exactly."""
    if vector is None:
        return None
    array = np.asarray(vector)
    return None if array.dtype == np.float32 else array.astype(np.float64).tobytes()
