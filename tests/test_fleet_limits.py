"""Rate limits that hold for a fleet: replicas on one PostgreSQL database count every limit in the
index's schema (`store.pg_rate`), so together they admit the configured rate, never N times it.
Each "replica" here opens the index on its own (its own connection pool), as a second process does."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi import HTTPException
from helpers import run_on_index_database

from rag_qa.keys import KeyRing
from rag_qa.pipeline import RagQA
from rag_qa.server.rate import RateLimit
from rag_qa.store import open_store

pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")


@pytest.fixture
def replicas(postgres_url: str):
    """Two stores on one index, opened separately, as two replicas have them."""
    one, other = open_store(postgres_url), open_store(postgres_url)
    yield one, other
    one.close()
    other.close()


def rows(url: str, query: str) -> list[tuple]:
    import psycopg

    connection, schema = url.split("#")
    with psycopg.connect(connection, autocommit=True) as db:
        return db.execute(query.format(s=f'"{schema}".')).fetchall()


def test_two_replicas_together_admit_the_rule_once(replicas, postgres_url: str) -> None:
    a, b = (RateLimit("5/minute", store, "rate:") for store in replicas)
    assert [limit.hit("key:k1") for limit in (a, b, a, b, a)] == [True] * 5
    assert (a.hit("key:k1"), b.hit("key:k1")) == (False, False)  # the 6th, on either replica
    assert a.blocked("key:k1") and b.blocked("key:k1")
    with pytest.raises(HTTPException) as refused:
        b.check("key:k1")
    assert refused.value.status_code == 429 and "5/minute" in refused.value.detail
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60 and 1 <= a.wait("key:k1") <= 60
    assert b.hit("key:k2") and not b.blocked("key:k2")  # another key counts alone
    failures = RateLimit("5/minute", replicas[0], "failures:")
    assert failures.hit("key:k1") and not failures.blocked("key:k1")  # another limit never shares a count
    counted = rows(postgres_url, "SELECT key, count(*) FROM {s}rate_hits GROUP BY key ORDER BY key")
    assert counted == [("failures:key:k1", 1), ("rate:key:k1", 5), ("rate:key:k2", 1)]  # refused hits are not counted


def test_many_threads_on_both_replicas_at_once_admit_exactly_the_rule(replicas) -> None:
    limits = [RateLimit("5/minute", store, "rate:") for store in replicas]
    start, admitted, errors = threading.Barrier(16), [], []  # 8 a replica: its pool's size, so none waits for a connection

    def hit(limit: RateLimit) -> None:
        start.wait()
        try:
            admitted.append(limit.hit("key:burst"))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(repr(exc))

    threads = [threading.Thread(target=hit, args=(limits[i % 2],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sorted(admitted) == [False] * 11 + [True] * 5


def test_the_window_moves_by_the_database_clock(replicas, postgres_url: str) -> None:
    """Hits are stamped by the database: older than the window, they no longer count; within it,
    the wait runs from the oldest one, not from now."""
    limit = RateLimit("5/minute", replicas[0], "rate:")
    assert not limit.blocked("key:old")  # (makes the table)
    for key, age in (("rate:key:old", 90), ("rate:key:recent", 10)):
        five_hits(postgres_url, key, age)
    assert limit.hit("key:old")  # five hits 90 s ago are out of a one-minute window
    assert not limit.hit("key:recent") and 1 <= limit.wait("key:recent") <= 50  # the oldest of them leaves in ~50 s
    five_hits(postgres_url, "rate:gone", 600)
    assert replicas[1].rate_sweep() == 5  # expired rows of keys that never came back go
    left = rows(postgres_url, "SELECT key, count(*) FROM {s}rate_hits GROUP BY key ORDER BY key")
    assert left == [("rate:key:old", 1), ("rate:key:recent", 5)]


def five_hits(url: str, key: str, age: int) -> None:
    """Five hits of a one-minute window for `key`, made `age` seconds ago by the database's clock."""
    now = "extract(epoch from clock_timestamp())"
    statement = f"INSERT INTO {{s}}rate_hits (key, at, expires) SELECT '{key}', {now} - {age}, {now} - {age} + 60 FROM generate_series(1, 5)"
    run_on_index_database(url, statement)


def app_over(qa: RagQA, tmp_path: Path, **settings):
    from rag_qa.config import ServerConfig
    from rag_qa.server import create_app

    return create_app(qa, ServerConfig(upload_dir=str(tmp_path / "uploads"), allowed_hosts=("testserver",), **settings))


def client_of(app):
    from starlette.testclient import TestClient

    return TestClient(app, client=("10.0.0.7", 50000), raise_server_exceptions=False)


def test_two_services_on_one_database_share_the_rate_limit_and_refuse_when_it_cannot_count(postgres_url: str, tmp_path: Path) -> None:
    with RagQA.open(postgres_url) as one, RagQA.open(postgres_url) as other:
        ring = KeyRing(one.store)
        (_, token), (_, second), (_, third) = (ring.create("reader", name=name) for name in ("busy", "quiet", "late"))
        a, b = (client_of(app_over(qa, tmp_path / name, rate_limit="4/minute")) for qa, name in ((one, "a"), (other, "b")))
        bearer = {"Authorization": f"Bearer {token}"}
        assert [client.get("/documents", headers=bearer).status_code for client in (a, b, b, a)] == [200] * 4
        limited = b.get("/documents", headers=bearer)
        assert limited.status_code == 429 and "4/minute" in limited.json()["error"], limited.text
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert a.get("/documents", headers=bearer).status_code == 429
        assert a.get("/documents", headers={"Authorization": f"Bearer {second}"}).status_code == 200  # each key counts alone
        refuse = "CREATE FUNCTION {s}refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no room'; END $$"
        run_on_index_database(postgres_url, refuse)
        run_on_index_database(postgres_url, "CREATE TRIGGER refuse BEFORE INSERT ON {s}rate_hits FOR EACH ROW EXECUTE FUNCTION {s}refuse()")
        failed = b.get("/documents", headers={"Authorization": f"Bearer {third}"})  # the hit cannot be counted
        assert failed.status_code == 503 and failed.headers["retry-after"], failed.text  # refused, never admitted uncounted
