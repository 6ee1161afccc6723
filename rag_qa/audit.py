"""The audit log: who uploaded, deleted, changed groups or managed keys, and when, kept with the
index in an append-only `events` table (the FAISS folder's SQLite database, or the PostgreSQL
schema). A change passes its event to the store (`event=audit.event(...)`), which appends it in
the change's own transaction: a change is never made without its event. Reads come a page at a
time (`page`), one bounded query each: the log may grow without bound, a read never does.
An event made while the service answers a request holds that request's id (`REQUEST_ID`, set by
`server.observe`), so the audit trail and the service's logs name the same request."""

from __future__ import annotations

import getpass
import time
from contextvars import ContextVar
from typing import Any

from rag_qa.errors import RagQAError
from rag_qa.store.events import LEGACY_PREFIX
from rag_qa.store.protocol import PassageStore

DEFAULT_PAGE = 100
MAX_PAGE = 10_000
RESERVED = ("id", "at", "details")  # names an event's details may not take (they are its own fields)
# The id of the request being answered (the service sets it per request; FastAPI's thread pool copies it into the endpoint's thread)
REQUEST_ID: ContextVar[str | None] = ContextVar("rag_qa_request_id", default=None)


def command_line_user() -> str:
    """Who acts from the command line: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (containers)
        return "cli:unknown"


def event(who: str, action: str, target: str, **details: Any) -> dict[str, Any]:
    """An event for a store call's `event=`: `who` (a key's name, or `command_line_user()`) did
    `action` to `target`, now; `details` must be JSON (a bad one fails the change it comes with).
    Made during a request, its details hold the request's id (`request_id`, unless given)."""
    clash = sorted(set(details) & set(RESERVED))
    if clash:
        raise RagQAError(f"an audit event's details may not be named {', '.join(clash)}")
    request_id = REQUEST_ID.get()
    if request_id is not None:
        details = {"request_id": request_id, **details}
    return {"at": time.time(), "who": who, "action": action, "target": target, "details": details}


def record(store: PassageStore, who: str, action: str, target: str, **details: Any) -> int:
    """Keep an event on its own (no change goes with it: a failed key check); returns its id."""
    return store.append_event(event(who, action, target, **details))


def page(store: PassageStore, last: int | None = None, before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """The `last` newest events older than event id `before` (the newest when None), oldest first,
    and the `before` of the next (older) page, None at the first event. Walking back from the
    newest page with each `next` lists every event once; one bounded query per page."""
    last = DEFAULT_PAGE if last is None else last
    if not isinstance(last, int) or not 1 <= last <= MAX_PAGE:
        raise RagQAError(f"a page holds between 1 and {MAX_PAGE} events, not {last!r}")
    if store.read_only and store.metadata_names(LEGACY_PREFIX):
        raise RagQAError(
            f"{store.path} still keeps its audit log the old way (an entry per event); open it for writing once "
            "(`rag-qa check --index INDEX`, or serve or index it) to move the log into its events table, then read it"
        )
    rows = store.events(last + 1, before)  # one more: whether an older page exists
    older = len(rows) > last
    shown = [_flat(row) for row in rows[-last:]]
    return shown, shown[0]["id"] if older else None


def events(store: PassageStore, last: int | None = None, before: int | None = None) -> list[dict[str, Any]]:
    """`page`'s events alone: {"id", "at", "who", "action", "target", **details}, oldest first."""
    return page(store, last, before)[0]


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """An event as the CLI and the API show it: its details beside its fields."""
    return {**row["details"], **{name: value for name, value in row.items() if name != "details"}}
