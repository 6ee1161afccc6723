"""The audit log of a FAISS index folder: the `events` table of its SQLite database (see
`sqlite_db`), a mixin of `FaissStore`. The store's changes that are audited (a delete, new groups,
an upload) append their event inside their own SQLite transaction; this adds the calls that stand
alone (appending, paging) and the move of the old log (one JSON file per event under `audit/`)
into the table, which the first writable open does."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from rag_qa.errors import IndexCorruptError, RagQAError
from rag_qa.store.events import LEGACY_PREFIX, check_page, legacy_event
from rag_qa.store.sqlite_db import PassageDatabase


class FaissEvents:
    """`append_event`, `events` and the move of the old audit log, for `FaissStore`."""

    # FaissStore's: its folder, database, mutex, `read_only`, `_file_lock`, `_transaction`, `metadata_names`, `read_metadata`
    path: Path
    _database: PassageDatabase
    _mutex: Any

    def append_event(self, event: dict[str, Any]) -> int:
        """Add one event to the audit log (one INSERT: its own transaction); returns its id."""
        if self.read_only:
            raise RagQAError(f"{self.path} is open read-only")
        with self._mutex:
            return self._database.append_event(event)

    def events(self, last: int | None = None, before: int | None = None) -> list[dict[str, Any]]:
        """The `last` newest events older than id `before` (the newest when None), oldest first."""
        last, before = check_page(last, before)
        with self._mutex:
            return self._database.events(last, before)

    def _move_old_audit_log(self) -> None:
        """Move the old log into the events table: every entry in one transaction, then its files
        removed, all under the writer lock (an open elsewhere waits, then finds none). A move cut
        short between the commit and the removal is finished by the next open without importing
        any entry twice (`PassageDatabase.import_legacy_events`)."""
        folder = self.path / LEGACY_PREFIX
        if not folder.is_dir():
            return
        with self._file_lock():
            names = self.metadata_names(LEGACY_PREFIX)
            if names:
                with self._transaction() as (db, _):
                    db.import_legacy_events([self._legacy_event(name) for name in names])
            for name in names:
                (self.path / f"{name}.json").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # empty now, unless something else was kept there

    def _legacy_event(self, name: str) -> dict[str, Any]:
        try:
            return legacy_event(name, self.read_metadata(name))
        except IndexCorruptError:  # not JSON: kept as its text
            return legacy_event(name, None, (self.path / f"{name}.json").read_text("utf-8", errors="replace"))
