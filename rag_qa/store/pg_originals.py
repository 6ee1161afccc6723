"""Uploaded originals kept with a PostgreSQL index: the bytes of a file the service received,
in the `originals` table (see `pg_schema`), a mixin of `PgStore`. Kept in the same transaction as
the document's passages, so every replica on the database serves an upload's page images, and a
process killed mid-upload leaves the document and its original both stored or both absent. A row
follows its file (foreign key: deleted with it, renamed with it)."""

from __future__ import annotations

from typing import Any

from rag_qa.records import Document
from rag_qa.store.pg_retry import retried


class PgOriginals:
    """`original`, `original_sources` and the in-transaction write, for `PgStore`."""

    # PgStore's: `schema`, `_sql`, `_connection`
    schema: str
    keeps_originals = True  # the service need not keep its own copy of an upload

    def _keep_original(self, db: Any, document: Document) -> None:
        """Store `document.original` for its file (in the caller's transaction), or forget an
        older one when the new version comes without one."""
        db.execute(self._sql("DELETE FROM {s}.originals WHERE source = %s"), (document.source,))  # type: ignore[attr-defined]
        if document.original is not None:
            db.execute(self._sql("INSERT INTO {s}.originals (source, content) VALUES (%s, %s)"), (document.source, document.original))  # type: ignore[attr-defined]

    @retried
    def original(self, source: str) -> bytes | None:
        """The bytes of an indexed file whose original the index keeps (an upload), else None."""
        with self._connection() as db:  # type: ignore[attr-defined]
            if not self._has_originals(db):
                return None
            row = db.execute(self._sql("SELECT content FROM {s}.originals WHERE source = %s"), (source,)).fetchone()  # type: ignore[attr-defined]
        return bytes(row[0]) if row else None

    @retried
    def original_sources(self) -> set[str]:
        """The indexed files whose originals the index keeps."""
        with self._connection() as db:  # type: ignore[attr-defined]
            if not self._has_originals(db):
                return set()
            return {source for (source,) in db.execute(self._sql("SELECT source FROM {s}.originals"))}  # type: ignore[attr-defined]

    def _has_originals(self, db: Any) -> bool:
        """False for an older index opened read-only (writers add the table when they open it)."""
        return db.execute("SELECT to_regclass(%s)", (f"{self.schema}.originals",)).fetchone()[0] is not None
