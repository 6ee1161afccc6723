"""What both stores share about the audit log's events table: the shape of an event, its row, and
the old log (one metadata entry per event under "audit/") that the first writable open moves
into the table. The table is append-only: the stores have no call that changes or removes a row,
and the database itself refuses UPDATE and DELETE on it (triggers)."""

from __future__ import annotations

import json
from typing import Any

from rag_qa.errors import RagQAError

LEGACY_PREFIX = "audit/"  # metadata names of the one-entry-per-event log this table replaces
COLUMNS = ("at", "who", "action", "target")
APPEND_ONLY = "the audit log is append-only"


def event_row(event: dict[str, Any]) -> tuple[float, str, str, str, str]:
    """The columns of `event` ({"at", "who", "action", "target", "details"}), details as JSON.
    Checked before anything is written: a malformed event is a programming error, and inside a
    transaction it undoes the change it came with."""
    missing = [name for name in COLUMNS if name not in event]
    if missing or not isinstance(event.get("details", {}), dict):
        raise RagQAError(f"an audit event needs {', '.join(COLUMNS)} and a details dict; got {sorted(event)}")
    return float(event["at"]), str(event["who"]), str(event["action"]), str(event["target"]), json.dumps(event.get("details", {}))


def event_from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """An event as the stores return it: (id, at, who, action, target, details)."""
    event_id, at, who, action, target, details = row
    return {"id": int(event_id), "at": at, "who": who, "action": action, "target": target,
            "details": json.loads(details) if isinstance(details, str) else dict(details)}  # fmt: skip


def check_page(last: int | None, before: int | None) -> tuple[int, int | None]:
    """A page's bounds as the stores take them: at most `last` events (default 100), older than `before`."""
    last = 100 if last is None else last
    if not isinstance(last, int) or last < 1:
        raise RagQAError(f"a page of events holds at least 1 event, not {last!r}")
    return last, before


def legacy_event(name: str, record: Any, raw: str = "") -> dict[str, Any]:
    """An entry of the old log (metadata `name`) as an event of the table; its name is kept in the
    details ("imported_from"), so a move interrupted after its commit never imports it twice. An
    unreadable entry is kept too, as its raw text: nothing recorded is dropped."""
    if not isinstance(record, dict):
        raw = raw or json.dumps(record)
        stamp = name.removeprefix(LEGACY_PREFIX).partition("-")[0]  # the old names began with the time in nanoseconds
        at = int(stamp) / 1e9 if stamp.isdigit() else 0.0
        return {"at": at, "who": "-", "action": "unreadable audit entry", "target": name, "details": {"imported_from": name, "raw": raw}}
    details = {key: value for key, value in record.items() if key not in COLUMNS}
    return {"at": record.get("at", 0.0), "who": record.get("who", "-"), "action": record.get("action", "-"),
            "target": record.get("target", "-"), "details": {**details, "imported_from": name}}  # fmt: skip
