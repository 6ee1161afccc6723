"""Who may read what: `rag-qa keys` (API keys for the service, kept with the index; see
rag_qa/keys.py), `rag-qa groups` (documents' access groups) and `rag-qa audit`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from rag_qa.cli.common import SharedOptions, emit, split_groups
from rag_qa import audit
from rag_qa.audit import command_line_user
from rag_qa.keys import ROLES, ApiKey, KeyRing
from rag_qa.pipeline import RagQA


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def _line(key: ApiKey) -> str:
    state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
    return f"{key.id}  {key.role:6}  {key.name}  groups: {','.join(key.groups) or '-'}  created {_when(key.created_at)}  {state}"


def cmd_keys(args: argparse.Namespace) -> int:
    with RagQA.open(args.index, read_only=True):
        pass  # the index must exist: a mistyped path must not become a new, empty index with a key
    with RagQA.open(args.index, read_only=args.action == "list") as qa:
        ring = KeyRing(qa.store)
        if args.action == "create":
            record, token = ring.create(args.role, split_groups(args.groups) or [], args.name, by=command_line_user())  # with its event

            def created() -> None:
                print(token)
                print(f"the {record.role} key {record.name!r} (id {record.id}); it is shown this once: keep it safe", file=sys.stderr)

            emit(args, {"key": token, **record.to_dict()}, created)
        elif args.action == "list":
            keys = ring.list()
            emit(args, {"keys": [k.to_dict() for k in keys]}, lambda: print("\n".join(_line(k) for k in keys) or "no keys: the service runs open on loopback only"))
        else:
            key = ring.revoke(args.key, by=command_line_user())
            emit(args, key.to_dict(), lambda: print(f"revoked: {_line(key)}"))
    return 0


def cmd_groups(args: argparse.Namespace) -> int:
    if args.action == "list":
        with RagQA.open(args.index, read_only=True) as qa:
            files = [{"source": f["source"], "groups": f["groups"]} for f in qa.store.files()]
        emit(args, {"documents": files}, lambda: print("\n".join(f"{','.join(f['groups']) or '-':24} {f['source']}" for f in files)))
        return 0
    with RagQA.open(args.index, read_only=True):
        pass  # the index must exist (see cmd_keys)
    with RagQA.open(args.index) as qa:
        groups = split_groups(args.groups) or []
        name = qa.readable_source(args.source)  # the stored name, which the event names
        source = qa.set_groups(name, groups, event=audit.event(command_line_user(), "set groups", name, groups=groups))
    readers = f"keys holding {', '.join(groups)} (and admin keys)" if groups else "every key"
    emit(args, {"source": source, "groups": groups}, lambda: print(f"{source}: readable by {readers}"))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    with RagQA.open(args.index, read_only=True) as qa:
        events, older = audit.page(qa.store, args.last, args.before)

    def table() -> None:
        if not events:
            print("no events recorded yet (uploads, deletions, group and key changes are)")
        for event in events:
            details = {k: v for k, v in event.items() if k not in ("id", "at", "who", "action", "target")}
            print(f"{event['id']}  {_when(event['at'])}  {event['who']}  {event['action']}  {event['target']}" + (f"  {json.dumps(details)}" if details else ""))
        if older is not None:
            print(f"older events: rag-qa audit --index {args.index} --last {len(events)} --before {older}", file=sys.stderr)

    emit(args, {"events": events, "next": older}, table)
    return 0


def add_keys(sub: Any, o: SharedOptions) -> None:
    p = sub.add_parser("keys", help="create, list and revoke the service's API keys (kept with the index)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[o.common], help="make a key and print it (once)")
    create.add_argument("--role", required=True, choices=ROLES, help="reader: ask, search, read documents; editor: also upload and delete; admin: also manage keys")
    create.add_argument("--groups", action="append", metavar="A,B", help="access groups whose documents the key may read (documents without groups are visible to every key)")
    create.add_argument("--name", help="who or what the key is for (default: its id)")
    actions.add_parser("list", parents=[o.common], help="the keys, revoked ones included (never the keys themselves)")
    revoke = actions.add_parser("revoke", parents=[o.common], help="revoke a key: it stops working at once")
    revoke.add_argument("key", metavar="ID|NAME", help="the key's id, or its name when no other key has it")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("groups", help="which keys may read which documents: access groups, changed without re-embedding")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    change = actions.add_parser("set", parents=[o.common], help="give a document access groups (none: every key may read it)")
    change.add_argument("source", metavar="SOURCE", help="the document as indexed (see `rag-qa groups list`)")
    change.add_argument("groups", nargs="*", metavar="GROUP", help="keys holding any of these groups may read it (also A,B); none: every key")
    actions.add_parser("list", parents=[o.common], help="every indexed document with its access groups")
    p.set_defaults(func=cmd_groups)

    p = sub.add_parser("audit", parents=[o.common], help="who uploaded, deleted, changed groups or managed keys, and when: the newest page (oldest first)")
    p.add_argument("--last", type=int, metavar="N", help=f"events per page (default {audit.DEFAULT_PAGE}, at most {audit.MAX_PAGE})")
    p.add_argument("--before", type=int, metavar="ID", help="the page of events older than event ID (the `next` of the page after it)")
    p.set_defaults(func=cmd_audit)
