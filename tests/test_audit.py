"""The audit log on both stores: an append-only events table, written in the same transaction as
the change it records (a change whose event cannot be written does not happen), read a page at a
time with one bounded query, and the old one-file-per-event log moved into it once."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from helpers import run_on_index_database

from rag_qa import audit
from rag_qa.cli import main
from rag_qa.config import IndexSettings, VectorIndexConfig
from rag_qa.errors import RagQAError
from rag_qa.records import Document, Passage
from rag_qa.store import FaissStore, PgStore, open_store
from rag_qa.store.sqlite_db import PassageDatabase

DIM = 8


class EventLost(Exception):
    """What the patched event append raises: a full disk, a dropped connection."""


@pytest.fixture(params=["faiss", "postgresql"])
def location(request, tmp_path):
    """A fresh index: a folder, or a new schema on the session's PostgreSQL server."""
    return str(tmp_path / "ix") if request.param == "faiss" else request.getfixturevalue("postgres_url")


def new_store(location):
    return open_store(location, IndexSettings(vector_index=VectorIndexConfig(index_type="flat")), dimension=DIM)


def file_of(source: str, n: int = 3) -> tuple[Document, list[Passage]]:
    passages = [Passage(Passage.make_id(source, i, str(i)), f"passage {i} of {source}", source, i, i + 1) for i in range(n)]
    return Document(source, f"the text of {source}", "hash", ()), passages


def vectors(n: int) -> np.ndarray:
    v = np.random.default_rng(n).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def lose_events(store, monkeypatch) -> None:
    """Make every event append fail inside its store's transaction."""

    def fail(*_args, **_kwargs):
        raise EventLost("the event could not be written")

    if isinstance(store, FaissStore):
        monkeypatch.setattr(PassageDatabase, "append_event", fail)
    else:
        monkeypatch.setattr(PgStore, "_append_event", fail)


# ----------------------------------------------------------------------------- written with the change


def test_a_delete_whose_event_cannot_be_written_does_not_happen(location, monkeypatch):
    store = new_store(location)
    store.replace_files([file_of("a.txt")], vectors(3))
    lose_events(store, monkeypatch)
    with pytest.raises(EventLost):
        store.delete_source("a.txt", event=audit.event("tester", "delete", "a.txt"))
    assert store.file_hash("a.txt") == "hash" and store.count() == 3  # still there
    monkeypatch.undo()
    assert store.delete_source("a.txt", event=audit.event("tester", "delete", "a.txt")) == 3
    assert store.file_hash("a.txt") is None
    assert [(e["who"], e["action"], e["target"]) for e in audit.events(store)] == [("tester", "delete", "a.txt")]
    store.close()


def test_groups_uploads_and_keys_are_written_only_with_their_event(location, monkeypatch):
    store = new_store(location)
    store.replace_files([file_of("a.txt")], vectors(3))
    lose_events(store, monkeypatch)
    with pytest.raises(EventLost):
        store.set_groups("a.txt", ["hr"], event=audit.event("tester", "set groups", "a.txt", groups=["hr"]))
    with pytest.raises(EventLost):
        store.replace_files([file_of("b.txt")], vectors(3), event=audit.event("tester", "upload", "b.txt"))
    with pytest.raises(EventLost):
        store.write_metadata("api-key-0123456789ab", {"name": "k"}, event=audit.event("tester", "create key", "k"))
    assert store.files()[0]["groups"] == [] and store.file_hash("b.txt") is None and store.read_metadata("api-key-0123456789ab") is None
    monkeypatch.undo()
    assert store.set_groups("a.txt", ["hr"], event=audit.event("tester", "set groups", "a.txt", groups=["hr"]))
    store.replace_files([file_of("b.txt")], vectors(3), event=audit.event("tester", "upload", "b.txt"))
    store.write_metadata("api-key-0123456789ab", {"name": "k"}, event=audit.event("tester", "create key", "k"))
    assert not store.set_groups("missing.txt", [], event=audit.event("tester", "set groups", "missing.txt"))  # no change, no event
    assert store.delete_source("missing.txt", event=audit.event("tester", "delete", "missing.txt")) == 0
    assert [(e["action"], e["target"]) for e in audit.events(store)] == [("set groups", "a.txt"), ("upload", "b.txt"), ("create key", "k")]
    assert audit.events(store)[0]["groups"] == ["hr"]
    store.close()


def test_the_events_table_refuses_updates_and_deletes(location):
    store = new_store(location)
    audit.record(store, "tester", "delete", "a.txt")
    store.close()
    if location.startswith("postgresql"):
        import psycopg

        connection_url, schema = location.split("#")
        with psycopg.connect(connection_url, autocommit=True) as db:
            for statement in (f"UPDATE {schema}.events SET who = 'someone else'", f"DELETE FROM {schema}.events", f"TRUNCATE {schema}.events"):
                with pytest.raises(psycopg.Error, match="append-only"):
                    db.execute(statement)
    else:
        with sqlite3.connect(f"{location}/passages.sqlite3") as db:
            for statement in ("UPDATE events SET who = 'someone else'", "DELETE FROM events"):
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    db.execute(statement)
    with open_store(location, read_only=True) as store:
        assert [e["who"] for e in audit.events(store)] == ["tester"]


# ----------------------------------------------------------------------------- paging


def test_pages_walk_back_to_the_first_event_each_event_once(location):
    store = new_store(location)
    for n in range(25):
        audit.record(store, "tester", "delete", f"doc-{n}.txt", n=n)
    seen, before, pages = [], None, []
    while True:
        events, before = audit.page(store, last=10, before=before)
        pages.append([e["n"] for e in events])
        seen += events
        if before is None:
            break
    assert pages == [list(range(15, 25)), list(range(5, 15)), list(range(5))]  # newest page first, each oldest first
    assert sorted(e["n"] for e in seen) == list(range(25)) and len({e["id"] for e in seen}) == 25
    ids = [e["id"] for e in sorted(seen, key=lambda e: e["n"])]
    assert ids == sorted(ids)  # ids increase with time
    assert [e["n"] for e in audit.events(store, last=3, before=ids[5])] == [2, 3, 4]
    assert audit.page(store, last=25) == (sorted(seen, key=lambda e: e["id"]), None)  # exactly one page: no next
    with pytest.raises(RagQAError, match="between 1 and"):
        audit.page(store, last=0)
    store.close()


def test_a_page_of_ten_runs_one_bounded_query_among_a_thousand_events(location, monkeypatch):
    store = new_store(location)
    for n in range(1000):
        store.append_event(audit.event("tester", "delete", f"doc-{n}.txt"))
    newest = audit.page(store, last=10)[0]
    if isinstance(store, FaissStore):
        statements: list[str] = []
        connection = store._database.db
        connection.set_trace_callback(statements.append)
        page = store.events(last=11, before=newest[5]["id"])
        connection.set_trace_callback(None)
        reads = [s for s in statements if "events" in s]
        assert len(reads) == 1 and "LIMIT 11" in reads[0], statements
        plan = " ".join(row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + reads[0]))
        assert "TEMP B-TREE" not in plan and "events" in plan, plan  # no sort of every row: the scan stops at the limit
    else:
        page = _one_bounded_pg_query(store, monkeypatch, last=11, before=newest[5]["id"])
    assert len(page) == 11 and page[-1]["id"] == newest[4]["id"]  # the 11 before the sixth newest, oldest first
    store.close()


def _one_bounded_pg_query(store, monkeypatch, last: int, before: int) -> list[dict]:
    """Run `store.events` recording its statements; there must be one, and PostgreSQL's own
    count of the rows it read for it (EXPLAIN ANALYZE) must stay within the page."""
    from contextlib import contextmanager

    from psycopg import sql

    executed = []
    real = PgStore._connection

    class Recording:
        def __init__(self, db):
            self.db = db

        def execute(self, query, params=None):
            executed.append((query, params))
            return self.db.execute(query, params)

    @contextmanager
    def recording(self):
        with real(self) as db:
            yield Recording(db)

    monkeypatch.setattr(PgStore, "_connection", recording)
    page = store.events(last=last, before=before)
    monkeypatch.undo()
    assert len(executed) == 1
    query, params = executed[0]
    with real(store) as db:
        plan = db.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query, params).fetchone()[0][0]["Plan"]

    def rows_read(node: dict) -> list[int]:
        return [node["Actual Rows"]] + [n for child in node.get("Plans", []) for n in rows_read(child)]

    assert max(rows_read(plan)) <= last, plan
    return page


# ----------------------------------------------------------------------------- the old log


def _legacy_entries(store) -> list[str]:
    names = []
    for n in range(3):
        name = f"{audit.LEGACY_PREFIX}{1_700_000_000_000_000_000 + n:020d}-abcd00{n:02d}"
        store.write_metadata(name, {"at": 1_700_000_000.0 + n, "who": "cli:old", "action": "delete", "target": f"old-{n}.txt", "passages": n})
        names.append(name)
    return names


def test_the_old_audit_entries_move_into_the_table_once(location):
    store = new_store(location)
    audit.record(store, "tester", "create key", "before the upgrade")  # an event already in the table
    names = _legacy_entries(store)
    store.close()
    with open_store(location, read_only=True) as reader:
        with pytest.raises(RagQAError, match="open it for writing once"):
            audit.events(reader)  # not moved yet: a partial log is refused, not shown
    for _ in range(2):
        new_store(location).close()  # the first writable open moves them; the second finds none
    with open_store(location, read_only=True) as reader:
        events = audit.events(reader)
        assert reader.metadata_names(audit.LEGACY_PREFIX) == []
    assert [(e["target"], e.get("passages")) for e in events] == [("before the upgrade", None), ("old-0.txt", 0), ("old-1.txt", 1), ("old-2.txt", 2)]
    assert [e["at"] for e in events[1:]] == [1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.0]
    assert [e["imported_from"] for e in events[1:]] == names


def test_an_index_made_before_the_events_table_reads_as_empty_and_gets_one(location):
    store = new_store(location)
    store.replace_files([file_of("a.txt")], vectors(3))
    store.close()
    run_on_index_database(location, "DROP TABLE {s}events")
    with open_store(location, read_only=True) as old:
        assert audit.events(old) == []
    with new_store(location) as upgraded:
        upgraded.delete_source("a.txt", event=audit.event("tester", "delete", "a.txt"))
        assert [e["target"] for e in audit.events(upgraded)] == ["a.txt"]


def test_a_move_interrupted_before_the_old_files_were_removed_is_not_imported_twice(tmp_path):
    location = str(tmp_path / "ix")
    store = new_store(location)
    names = _legacy_entries(store)
    broken = f"{audit.LEGACY_PREFIX}{1_700_000_009_000_000_000:020d}-ffff0000"
    (tmp_path / "ix" / f"{broken}.json").write_text("{not json")
    saved = {name: (tmp_path / "ix" / f"{name}.json").read_bytes() for name in [*names, broken]}
    store.close()
    new_store(location).close()
    (tmp_path / "ix" / audit.LEGACY_PREFIX).mkdir()
    for name, data in saved.items():  # as if the process died after the commit, before the removal
        (tmp_path / "ix" / f"{name}.json").write_bytes(data)
    new_store(location).close()
    with open_store(location, read_only=True) as reader:
        events = audit.events(reader)
    assert [e["target"] for e in events] == ["old-0.txt", "old-1.txt", "old-2.txt", broken]
    assert events[-1]["action"] == "unreadable audit entry" and events[-1]["raw"] == "{not json" and events[-1]["at"] == 1_700_000_009.0
    assert not (tmp_path / "ix" / audit.LEGACY_PREFIX).exists()


# ----------------------------------------------------------------------------- command line and HTTP


def test_cli_pages_the_log_and_records_key_changes_with_them(tmp_path, capsys):
    index = str(tmp_path / "ix")
    new_store(index).close()
    for name in ("alpha", "beta", "gamma"):
        assert main(["keys", "create", "--role", "reader", "--name", name, "--index", index, "--json"]) == 0
    assert main(["keys", "revoke", "beta", "--index", index, "--json"]) == 0
    capsys.readouterr()
    assert main(["audit", "--index", index, "--last", "2", "--json"]) == 0
    newest = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in newest["events"]] == ["create key", "revoke key"] and newest["next"] == newest["events"][0]["id"]
    assert main(["audit", "--index", index, "--last", "2", "--before", str(newest["next"]), "--json"]) == 0
    older = json.loads(capsys.readouterr().out)
    assert [e["target"].split()[0] for e in older["events"]] == ["alpha", "beta"] and older["next"] is None
    assert main(["audit", "--index", index, "--last", "2"]) == 0
    shown = capsys.readouterr()
    assert "revoke key" in shown.out.splitlines()[-1] and f"--before {newest['next']}" in shown.err


def test_http_audit_pages_with_next(tmp_path):
    from starlette.testclient import TestClient

    from rag_qa.config import ServerConfig
    from rag_qa.keys import KeyRing
    from rag_qa.pipeline import RagQA
    from rag_qa.server import create_app

    store = new_store(str(tmp_path / "ix"))
    _, token = KeyRing(store).create("admin", name="root")
    for n in range(5):
        audit.record(store, "tester", "delete", f"doc-{n}.txt")
    qa = RagQA(store, embedder=None)
    config = ServerConfig(upload_dir=str(tmp_path / "uploads"), rate_limit="", allowed_hosts=("testserver",))
    with TestClient(create_app(qa, config)) as client:
        admin = {"Authorization": f"Bearer {token}"}
        first = client.get("/audit?last=4", headers=admin).json()
        assert [e["target"] for e in first["events"]] == [f"doc-{n}.txt" for n in range(1, 5)]
        second = client.get(f"/audit?last=4&before={first['next']}", headers=admin).json()
        assert [e["target"] for e in second["events"]] == ["doc-0.txt"]
        assert second["next"] is None and client.get("/audit?last=0", headers=admin).status_code == 422
    qa.close()


def test_cli_delete_and_group_changes_do_not_happen_without_their_event(tmp_path, monkeypatch, capsys):
    index = str(tmp_path / "ix")
    store = new_store(index)
    store.replace_files([file_of("a.txt")], vectors(3))
    store.close()
    monkeypatch.setattr(PassageDatabase, "append_event", lambda *_: (_ for _ in ()).throw(EventLost("disk full")))
    with pytest.raises(EventLost):
        main(["delete", "a.txt", "--index", index])
    with pytest.raises(EventLost):
        main(["groups", "set", "a.txt", "hr", "--index", index])
    monkeypatch.undo()
    with open_store(index, read_only=True) as reader:
        assert reader.file_hash("a.txt") == "hash" and reader.files()[0]["groups"] == []
    assert main(["groups", "set", "a.txt", "hr", "--index", index]) == 0
    assert main(["delete", "a.txt", "--index", index]) == 0
    capsys.readouterr()
    assert main(["audit", "--index", index, "--json"]) == 0
    events = json.loads(capsys.readouterr().out)["events"]
    assert [(e["action"], e["target"], e.get("groups")) for e in events] == [("set groups", "a.txt", ["hr"]), ("delete", "a.txt", None)]
    assert all(e["who"].startswith("cli:") for e in events)
