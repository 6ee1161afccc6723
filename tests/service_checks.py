"""The invariants of tests/test_service_state.py: what no caller of the team service may learn or
change, judged against what the index holds (read from its store, not predicted), so the checks
stay right whatever the service answers and however its rules are fixed.

(a) no response (body, headers, error message) carries the secret word or the name of a document
    the caller may not read; a key's document list is exactly what it may read, and a document
    it may read is shown to it; a mail's attachments have the mail's groups.
(b) a hidden document answers exactly as a name never indexed (status and body, the name asked
    for replaced by a placeholder).
(c) a revoked (or unknown, or malformed) key gets 401 on everything but liveness.
(d) once a key exists, no request without a valid key is served (/health: liveness only; "/").
(e) an editor's group change or replace never takes a document away from a key it could read,
    unless the editor holds the group through which the key read it (a public document stays
    public); an editor gives a new document only groups it holds.
(f) nobody changes or removes a document it cannot read; a caller without a valid key, or a
    reader, changes nothing; only the role an endpoint needs succeeds.
(g) a sync (moves, prunes, vanished folders, files that come back) never makes a document readable
    by more keys than before.
(x) no request makes the service fail (5xx).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = re.compile(r"\b[A-Z]{4,}\d{4}\b")
ROLES = ("reader", "editor", "admin")
IGNORED_HEADERS = {"content-length", "date", "x-request-id"}  # the request id: new for every request, about no document


@dataclass(eq=False)
class Key:
    """A key the model made, with its secret; `revoked` once a revocation was answered 200."""

    label: str
    role: str
    groups: tuple[str, ...]
    token: str
    id: str
    revoked: bool = False

    def __repr__(self) -> str:
        return f"{self.label}{' (revoked)' if self.revoked else ''}"


@dataclass(frozen=True)
class Stranger:
    """A caller without a valid key: no header, a malformed one, an unknown key, another scheme."""

    label: str
    header: str | None

    def __repr__(self) -> str:
        return self.label


STRANGERS = (
    Stranger("no key", None),
    Stranger("malformed key", "Bearer not-a-key"),
    Stranger("unknown key", "Bearer rq_000000000000_" + "A" * 43),
    Stranger("basic auth", "Basic YWRtaW46YWRtaW4="),
)
Caller = Key | Stranger


@dataclass(frozen=True)
class Doc:
    """One indexed document as its store holds it."""

    source: str
    groups: tuple[str, ...]
    content_hash: str
    marker: str | None  # the secret word its text holds


@dataclass
class Exchange:
    """One request and its response, as the caller saw them."""

    caller: Caller
    method: str
    path: str
    sent: str  # everything the request carried: path, JSON, form fields, file names and contents
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.method} {self.path} by {self.caller!r} -> {self.status} {self.body[:400]}"


failures: list[str] | None = None  # None: a broken invariant raises; a list: it is noted there and the run goes on


def broken(message: str) -> None:
    """Report a broken invariant: raise (tests, shrinking) or note it (an inventory run)."""
    if failures is None:
        raise AssertionError(message)
    failures.append(message)


def snapshot(store: Any) -> dict[str, Doc]:
    """What the index holds now, read from its store (the truth the checks judge against)."""
    docs = {}
    for row in store.files():
        found = MARKER.search(store.document_text(row["source"]) or "")
        docs[row["source"]] = Doc(row["source"], tuple(sorted(row["groups"])), row["content_hash"], found.group(0) if found else None)
    return docs


def authenticated(caller: Caller) -> bool:
    return isinstance(caller, Key) and not caller.revoked


def role_of(caller: Caller) -> str | None:
    return caller.role if authenticated(caller) else None


def may_read(caller: Caller, groups: tuple[str, ...]) -> bool:
    """Admins read all; other keys read documents without groups and those sharing one; a caller
    without a valid key reads nothing (the service has keys)."""
    if not authenticated(caller):
        return False
    return caller.role == "admin" or not groups or bool(set(groups) & set(caller.groups))


def readers_wider(new: tuple[str, ...], old: tuple[str, ...]) -> bool:
    """Whether some key could read a document with groups `new` that could not read it with `old`."""
    if not old:
        return False
    return not new or not set(new) <= set(old)


# ------------------------------------------------------------------ one response
def secrets_hidden_from(caller: Caller, before: dict[str, Doc], after: dict[str, Doc], sent: str) -> dict[str, str]:
    """Each string the caller must not see (lower case) -> what it is: the secret words, stored
    names and file names of the documents it could not read before the request (unless it could
    read one holding the same word or name, before or after, or sent the string itself)."""
    readable = [d for d in (*before.values(), *after.values()) if may_read(caller, d.groups)]
    seen_words = {d.marker for d in readable}
    seen_names = {Path(d.source).name for d in readable} | {d.source for d in readable}
    sent = sent.lower()
    secrets = {}
    for doc in before.values():
        if may_read(caller, doc.groups):
            continue
        what = f"{doc.source} (groups {list(doc.groups)})"
        for value, kind in ((doc.marker, "secret word"), (doc.source, "stored name"), (Path(doc.source).name, "file name")):
            if value and value not in seen_words | seen_names and value.lower() not in sent:
                secrets[value.lower()] = f"the {kind} {value!r} of {what}"
    return secrets


def check_exchange(exchange: Exchange, before: dict[str, Doc], after: dict[str, Doc]) -> None:
    if exchange.status >= 500:
        broken(f"(x) the service failed (a server error can say what a refusal would not)\n  {exchange.describe()}")
    check_no_leak(exchange, before, after)
    check_keyless(exchange)
    check_role(exchange)
    check_listing(exchange, before)


def check_no_leak(exchange: Exchange, before: dict[str, Doc], after: dict[str, Doc]) -> None:
    seen = (exchange.body + "\n" + "\n".join(f"{k}: {v}" for k, v in exchange.headers.items())).lower()
    for secret, what in secrets_hidden_from(exchange.caller, before, after, exchange.sent).items():
        if secret in seen:
            return broken(f"(a) leak: {exchange.caller!r} was shown {what}\n  {exchange.describe()}")


def check_keyless(exchange: Exchange) -> None:
    """(c) and (d): without a valid key, only the page and liveness answer."""
    if authenticated(exchange.caller) or exchange.path == "/":
        return
    if exchange.path == "/health" and exchange.status == 200:
        extra = set(json.loads(exchange.body)) - {"status", "version"}
        if extra:
            return broken(f"(d) /health tells {exchange.caller!r} more than liveness: {sorted(extra)}\n  {exchange.describe()}")
        return
    if exchange.status != 401:
        rule = "(c) a revoked key" if isinstance(exchange.caller, Key) else "(d) a request without a valid key"
        return broken(f"{rule} was not refused with 401 (the service has had keys)\n  {exchange.describe()}")


def needed_role(method: str, path: str) -> str:
    if path.startswith(("/keys", "/audit")):
        return "admin"
    if method in ("PUT", "DELETE") or (method == "POST" and path == "/documents"):
        return "editor"
    return "reader"


def check_role(exchange: Exchange) -> None:
    role, needed = role_of(exchange.caller), needed_role(exchange.method, exchange.path)
    if 200 <= exchange.status < 300 and exchange.path not in ("/", "/health") and (role is None or ROLES.index(role) < ROLES.index(needed)):
        return broken(f"(f) {exchange.caller!r} (role {role}) succeeded where {needed} is needed\n  {exchange.describe()}")


def check_listing(exchange: Exchange, before: dict[str, Doc]) -> None:
    if (exchange.method, exchange.path, exchange.status) != ("GET", "/documents", 200):
        return
    listed = {d["source"] for d in json.loads(exchange.body)["documents"]}
    readable = {s for s, d in before.items() if may_read(exchange.caller, d.groups)}
    if listed != readable:
        return broken(
            f"(a) {exchange.caller!r}'s document list is not what it may read: extra {sorted(listed - readable)}, "
            f"missing {sorted(readable - listed)}\n  {exchange.describe()}"
        )


def check_same_as_absent(hidden: Exchange, absent: Exchange, hidden_name: str, absent_name: str, hidden_doc: Doc, uploads: Path | None = None) -> None:
    """(b): the answer about a hidden document, with the name asked for made a placeholder, is the
    answer about a name never indexed. For two uploads (`uploads`: their folder), where each was
    stored and the counts, which differ between any two uploads, are placeholders too."""

    def normalised(exchange: Exchange, name: str) -> tuple[int, str, dict[str, str]]:
        headers = {k: v.replace(name, "<NAME>") for k, v in exchange.headers.items() if k.lower() not in IGNORED_HEADERS}
        body = exchange.body.replace(name, "<NAME>")
        if uploads is not None:
            body = re.sub(r"\d+", "<N>", re.sub(re.escape(str(uploads)) + r"[^\"]*<NAME>", "<STORED>", body))
        return exchange.status, body, headers

    if normalised(hidden, hidden_name) != normalised(absent, absent_name):
        return broken(
            f"(b) {hidden.caller!r} can tell the hidden {hidden_doc.source} (groups {list(hidden_doc.groups)}) from a name never indexed:\n"
            f"  hidden: {hidden.describe()}\n  absent: {absent.describe()}"
        )


# ------------------------------------------------------------------ what a step changed
def check_changes(actor: Caller | str | None, before: dict[str, Doc], after: dict[str, Doc], remembered: dict[str, tuple[str, ...]]) -> None:
    """(e), (f), (g) for the step `actor` took ("operator": a sync or a key made on the command
    line; None: nothing)."""
    if actor is None:
        return
    if actor == "operator":
        check_sync(before, after, remembered)
    elif not authenticated(actor) or actor.role == "reader":
        if before != after:
            return broken(f"(f) {actor!r} changed the index: {describe_changes(before, after)}")
    elif actor.role == "editor":
        check_editor(actor, before, after)


def check_editor(editor: Key, before: dict[str, Doc], after: dict[str, Doc]) -> None:
    gone = {}
    for source, old in before.items():
        new = after.get(source)
        if not may_read(editor, old.groups):
            if new != old:
                return broken(f"(f) {editor!r} changed or removed {source} (groups {list(old.groups)}) that it cannot read: now {new}")
        elif new is None:
            gone.setdefault(Path(source).name, old)
        elif new.groups != old.groups:
            check_regroup(editor, old, new)
    for source in sorted(after.keys() - before.keys()):
        replaced = gone.pop(Path(source).name, None)  # a replaced upload may be kept under a new name
        if replaced is not None:
            check_regroup(editor, replaced, after[source])
        elif planted := set(after[source].groups) - set(editor.groups):
            return broken(f"(e) {editor!r} gave the new {source} groups it does not hold: {sorted(planted)}")


def check_regroup(editor: Key, old: Doc, new: Doc) -> None:
    """(e) for a document the editor could read whose groups it changed (or that it replaced)."""
    lost = set(old.groups) - set(new.groups) - set(editor.groups)
    if lost or (not old.groups and new.groups):
        whom = f"keys of {sorted(lost)}" if lost else "every key without its groups (it was public)"
        where = old.source if old.source == new.source else f"{old.source} (replaced by {new.source})"
        broken(f"(e) {editor!r} took {where} away from {whom}: groups {list(old.groups)} -> {list(new.groups)}")


def check_sync(before: dict[str, Doc], after: dict[str, Doc], remembered: dict[str, tuple[str, ...]]) -> None:
    """(g): every secret word now indexed is readable by no key that could not read it when it was
    last indexed (moved files keep their groups; files that vanish and come back get them back)."""
    for doc in after.values():
        old = remembered.get(doc.marker) if doc.marker else None
        if old is not None and readers_wider(doc.groups, old):
            return broken(f"(g) a sync made {doc.source} (secret {doc.marker}) readable by more keys: groups {list(old)} -> {list(doc.groups)}")


def check_attachments(docs: dict[str, Doc]) -> None:
    """(a) a mail's attachments are read by exactly the keys that read the mail (one rule for both)."""
    for source, doc in docs.items():
        mail = docs.get(source.split("#")[0]) if "#" in source else None
        if mail is not None and mail.groups != doc.groups:
            broken(f"(a) the attachment {source} has groups {list(doc.groups)}, its mail {list(mail.groups)}")


def describe_changes(before: dict[str, Doc], after: dict[str, Doc]) -> str:
    gone = sorted(before.keys() - after.keys())
    new = sorted(after.keys() - before.keys())
    changed = sorted(s for s in before.keys() & after.keys() if before[s] != after[s])
    return f"removed {gone}, added {new}, changed {[(s, before[s].groups, after[s].groups) for s in changed]}"
