"""The audit log: who uploaded, deleted or managed keys, and when, kept with the index (one
metadata entry per event, named by its time, so writers on several replicas never collide)."""

from __future__ import annotations

import getpass
import secrets
import time
from typing import Any

from rag_qa.store.protocol import PassageStore

PREFIX = "audit/"


def command_line_user() -> str:
    """Who acts from the command line: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (containers)
        return "cli:unknown"


def record(store: PassageStore, who: str, action: str, target: str, **details: Any) -> None:
    """Keep one event: `who` (a key's name, or `command_line_user()`) did `action` to `target`."""
    name = f"{PREFIX}{time.time_ns():020d}-{secrets.token_hex(4)}"
    store.write_metadata(name, {"at": time.time(), "who": who, "action": action, "target": target, **details})


def events(store: PassageStore, last: int | None = None) -> list[dict[str, Any]]:
    """The events, oldest first (only the `last` ones when given)."""
    names = store.metadata_names(PREFIX)
    if last is not None:
        names = names[-last:] if last > 0 else []
    return [event for event in (store.read_metadata(name) for name in names) if event is not None]
