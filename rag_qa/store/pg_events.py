"""The audit log of a PostgreSQL index: its `events` table (see `pg_schema`), a mixin of
`PgStore`. An audited change (a delete, new groups, an upload, a key) appends its event as the
last statement of its own transaction, so both commit or neither does."""

from __future__ import annotations

from typing import Any

from rag_qa.store.events import check_page, event_from_row, event_row
from rag_qa.store.pg_retry import retried

NEWEST = 2**63 - 1  # `before` for the newest page: above every bigint id


class PgEvents:
    """`append_event`, `events` and the in-transaction append, for `PgStore`."""

    # PgStore's: `schema`, `_sql`, `_connection`, `_transaction`
    schema: str

    def _append_event(self, db: Any, event: dict[str, Any]) -> int:
        """Append `event` inside the caller's transaction. Appenders of one index take turns from
        here until they commit, so ids grow in the order events become visible and a reader paging
        back by id never skips one that committed late."""
        db.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext('rag_qa:events'))", (self.schema,))
        query = self._sql("INSERT INTO {s}.events (at, who, action, target, details) VALUES (%s, %s, %s, %s, %s) RETURNING id")  # type: ignore[attr-defined]
        return int(db.execute(query, event_row(event)).fetchone()[0])

    @retried
    def append_event(self, event: dict[str, Any]) -> int:
        """Add one event to the audit log (its own transaction); returns its id."""
        with self._transaction() as db:  # type: ignore[attr-defined]
            return self._append_event(db, event)

    def events(self, last: int | None = None, before: int | None = None) -> list[dict[str, Any]]:
        """The `last` newest events older than id `before` (the newest when None), oldest first:
        one query that walks the primary key backwards and stops at the limit."""
        import psycopg

        last, before = check_page(last, before)
        query = self._sql("SELECT id, at, who, action, target, details FROM {s}.events WHERE id < %s ORDER BY id DESC LIMIT %s")  # type: ignore[attr-defined]
        try:
            with self._connection() as db:  # type: ignore[attr-defined]
                rows = db.execute(query, (before if before is not None else NEWEST, last)).fetchall()
        except psycopg.errors.UndefinedTable:  # an index from before the events table, opened read-only
            return []
        return [event_from_row(row) for row in reversed(rows)]
