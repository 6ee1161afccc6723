"""API keys and roles: keys kept hashed with the index (FAISS folder and PostgreSQL), the `rag-qa keys`
command, and a real `rag-qa serve` process that lets each role do exactly what it may (the full
matrix of endpoints x callers: 200, 401 or 403), refuses to run open off loopback, and becomes keyed
as soon as the index holds a key. In process: a service whose keys are all revoked is closed, never
open again; a caller without the role is refused before a byte of its upload is read; failed key
checks are limited per address and audited; a 5xx names no path and no free space."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, SAMPLE_FILES, cli_env, one_note_index
from service_process import start_service, stop

from rag_qa.errors import ConfigError, NotFoundError, RagQAError
from rag_qa.keys import KeyRing
from rag_qa.pipeline import RagQA
from rag_qa.server.background import free_port

httpx = pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")


def rag_qa(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "rag_qa.cli", *args], capture_output=True, text=True, timeout=300, env=cli_env())
    assert not check or result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_keys_are_kept_hashed_and_every_replica_sees_them(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    location = str(tmp_path / "index") if backend == "faiss" else request.getfixturevalue("postgres_url")
    with RagQA.open(location) as one, RagQA.open(location) as other:  # two services on one index
        ring, replica = KeyRing(one.store), KeyRing(other.store)
        record, token = ring.create("editor", ["hr", "legal", "hr", " "], name="wiki bot")
        assert record.groups == ("hr", "legal") and record.role == "editor" and record.name == "wiki bot"
        assert replica.verify(token) == record and replica.get("wiki bot") == record
        assert replica.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # one character off
        assert replica.verify("rq_" + "0" * 12 + "_" + token.split("_", 2)[2]) is None and replica.verify("nonsense") is None
        stored = json.dumps([one.store.read_metadata(n) for n in one.store.metadata_names("api-key-")])
        assert token not in stored and token.split("_", 2)[2] not in stored  # only the digest is kept
        second, _ = replica.create("reader", name="wiki bot")
        with pytest.raises(NotFoundError, match="2 keys are named 'wiki bot'"):
            ring.revoke("wiki bot")
        revoked = replica.revoke(record.id)
        assert ring.verify(token) is None and revoked.revoked_at is not None  # at once, on the other replica
        assert [(k.id, k.revoked_at is not None) for k in ring.list()] == [(record.id, True), (second.id, False)]
        assert ring.any_active()
        with pytest.raises(ConfigError, match="group name"):
            ring.create("reader", ["hr; DROP TABLE"])
        with pytest.raises(ConfigError, match="role must be one of"):
            ring.create("owner")


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> str:
    index = str(tmp_path_factory.mktemp("auth") / "index")
    rag_qa("index", str(REPO / "data"), "--index", index, "--quiet")
    return index


PDF = str(REPO / "data" / "safety-guide.pdf")
READS = [
    ("POST", "/ask", {"json": {"question": "How long is the loan period?"}}),
    ("POST", "/search", {"json": {"query": "drill battery"}}),
    ("GET", "/documents", {}),
    ("GET", f"/documents/{PDF}/text", {"params": {"page": 2}}),
    ("GET", f"/documents/{PDF}/pages/2.png", {"params": {"width": 200}}),
    ("GET", f"/documents/{PDF}/boxes", {"params": {"start": 840, "end": 859}}),
]
ADMIN = [("GET", "/keys", {}), ("POST", "/keys", {"json": {"role": "reader", "name": "made over HTTP"}}), ("GET", "/audit", {})]


def test_each_role_may_do_exactly_what_it_should(sample_index: str, tiny_bert: str) -> None:
    keys = {role: json.loads(rag_qa("keys", "create", "--role", role, "--name", f"{role} key", "--index", sample_index, "--json").stdout) for role in ("reader", "editor", "admin")}
    listed = json.loads(rag_qa("keys", "list", "--index", sample_index, "--json").stdout)["keys"]
    assert sorted(k["role"] for k in listed) == ["admin", "editor", "reader"] and all("key" not in k and "sha256" not in k for k in listed)
    process, url = start_service(sample_index, tiny_bert)
    callers = {"no key": {}, "bad key": {"Authorization": "Bearer rq_000000000000_" + "x" * 43}}
    callers |= {role: {"Authorization": f"Bearer {keys[role]['key']}"} for role in keys}
    wrong = []
    try:
        for caller, headers in callers.items():
            allowed = {"no key": set(), "bad key": set(), "reader": {"reader"}, "editor": {"reader", "editor"}, "admin": {"reader", "editor", "admin"}}[caller]
            for needs, requests in (("reader", READS), ("admin", ADMIN)):
                for method, path, options in requests:
                    status = httpx.request(method, url + path, headers=headers, timeout=120, **options).status_code
                    expected = 200 if needs in allowed else 401 if caller in ("no key", "bad key") else 403
                    wrong += [f"{caller} {method} {path}: {status}, not {expected}"] * (status != expected)
            name = f"notes-{caller.replace(' ', '-')}.txt"
            uploaded = httpx.post(f"{url}/documents", files=[("files", (name, b"The shed opens at nine."))], headers=headers, timeout=120)
            deleted = httpx.delete(f"{url}/documents/{name}", headers=headers, timeout=60)
            expected = 200 if "editor" in allowed else 401 if caller in ("no key", "bad key") else 403
            wrong += [f"{caller} upload: {uploaded.status_code}, delete: {deleted.status_code}, not {expected}"] * ({uploaded.status_code, deleted.status_code} != {expected})
        assert wrong == []
        refused = httpx.post(f"{url}/ask", json={"question": "Who?"}, timeout=60)
        assert refused.headers["www-authenticate"] == "Bearer" and "rag-qa keys create" in refused.json()["error"]
        assert httpx.get(f"{url}/health").json() == {"status": "ok", "version": httpx.get(f"{url}/health", headers=callers["reader"]).json()["version"]}
        assert httpx.get(f"{url}/health", headers=callers["reader"]).json()["files"] == SAMPLE_FILES  # what it holds: for a key only
        made = httpx.post(f"{url}/keys", json={"role": "editor", "groups": ["hr"]}, headers=callers["admin"]).json()
        assert httpx.get(f"{url}/documents", headers={"Authorization": f"Bearer {made['key']}"}).status_code == 200
        httpx.delete(f"{url}/keys/{made['id']}", headers=callers["admin"]).raise_for_status()
        assert httpx.get(f"{url}/documents", headers={"Authorization": f"Bearer {made['key']}"}).status_code == 401  # revoked: at once
        rag_qa("keys", "revoke", "reader key", "--index", sample_index)
        assert httpx.get(f"{url}/documents", headers=callers["reader"]).status_code == 401
        events = json.loads(rag_qa("audit", "--index", sample_index, "--json").stdout)["events"]
        assert httpx.get(f"{url}/audit", headers=callers["admin"]).json()["events"] == events
        failed = [e for e in events if e["action"] == "failed key check"]  # the bad key's 11 requests, then the two revoked keys
        assert [e["target"] for e in failed] == ["000000000000"] * 11 + [made["id"], keys["reader"]["id"]] and {e["address"] for e in failed} == {"127.0.0.1"}
        events = [e for e in events if e["action"] != "failed key check"]
        who = {keys[role]["id"]: role for role in keys}
        said = [(who.get(e["who"].split("(")[-1].rstrip(")"), "cli" if e["who"].startswith("cli:") else e["who"]), e["action"]) for e in events]
        assert said == [
            ("cli", "create key"), ("cli", "create key"), ("cli", "create key"), ("editor", "upload"), ("editor", "delete"),
            ("admin", "create key"), ("admin", "upload"), ("admin", "delete"), ("admin", "create key"), ("admin", "revoke key"), ("cli", "revoke key"),
        ]  # fmt: skip
        assert events[3]["target"].endswith("notes-editor.txt") and events[-1]["target"] == f"reader key ({keys['reader']['id']})"
    finally:
        stop(process)


def test_an_open_service_runs_on_loopback_only_and_keys_close_it(tmp_path: Path, tiny_bert: str) -> None:
    index = str(tmp_path / "index")
    rag_qa("index", str(REPO / "data" / "handbook.md"), "--index", index, "--quiet")
    refused = rag_qa("serve", "--index", index, "--reader", tiny_bert, "--host", "0.0.0.0", "--port", str(free_port()), check=False)
    assert refused.returncode == 2 and "refusing to serve on 0.0.0.0 without API keys" in refused.stderr and "--no-auth" in refused.stderr
    missing = rag_qa("keys", "create", "--role", "admin", "--index", str(tmp_path / "typo"), check=False)
    assert missing.returncode != 0 and not (tmp_path / "typo").exists()  # a mistyped index is not created
    process, url = start_service(index, tiny_bert)
    try:
        assert httpx.post(f"{url}/ask", json={"question": "How long is the loan period?"}, timeout=60).status_code == 200
        form_post = httpx.post(f"{url}/documents", files=[("files", ("a.txt", b"Text."))], timeout=60)
        assert form_post.status_code == 401  # what a cross-site form can send: no Authorization header
        assert httpx.post(f"{url}/documents", files=[("files", ("a.txt", b"Text."))], headers={"Authorization": "Bearer x"}, timeout=60).status_code == 200
        with RagQA.open(index) as qa:
            _, token = KeyRing(qa.store).create("reader")
        assert httpx.post(f"{url}/ask", json={"question": "How long is the loan period?"}, timeout=60).status_code == 401  # keyed from now on
        assert httpx.post(f"{url}/ask", json={"question": "Who?"}, headers={"Authorization": f"Bearer {token}"}, timeout=60).status_code == 200
    finally:
        said = stop(process)
    assert "open service on loopback" in said


# ------------------------------------------------------------------ in process: fail closed
HR_NOTE = "The salary code word is ZEBRA-7731. Only hr may read it."
QUESTION = {"question": "What is the salary code word?"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def hr_qa(tmp_path: Path, embedder, tiny_bert: str):
    """An index holding one document of the `hr` group (and never a key yet)."""
    with one_note_index(tmp_path, embedder, tiny_bert, "sal.txt", HR_NOTE, groups=["hr"]) as qa:
        yield qa


class CountingBody:
    """The app behind a `receive` that counts the request-body bytes the app reads."""

    def __init__(self, app) -> None:
        self.app, self.read = app, 0

    async def __call__(self, scope, receive, send) -> None:
        async def counted():
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def app_over(qa: RagQA, tmp_path: Path, **settings):
    from rag_qa.config import ServerConfig
    from rag_qa.server import create_app

    return create_app(qa, ServerConfig(upload_dir=str(tmp_path / "uploads"), allowed_hosts=("testserver",), **settings))


def client_of(app, address: str = "testclient"):
    from starlette.testclient import TestClient

    return TestClient(app, client=(address, 50000), raise_server_exceptions=False)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_revoking_the_last_key_closes_the_service_and_never_reopens_it(hr_qa: RagQA, tmp_path: Path) -> None:
    ring, client = KeyRing(hr_qa.store), client_of(app_over(hr_qa, tmp_path))
    assert client.post("/ask", json=QUESTION).status_code == 200  # open: on loopback, and this index never held a key
    record, token = ring.create("reader", name="the only key")
    assert client.post("/ask", json=QUESTION).status_code == 401
    ring.revoke(record.id)
    closed = client.post("/ask", json=QUESTION)
    assert closed.status_code == 401 and "ZEBRA" not in closed.text, closed.text
    assert "revoked" in closed.json()["error"] and "rag-qa keys create" in closed.json()["error"]
    assert client.post("/ask", json=QUESTION, headers=bearer(token)).status_code == 401
    planted = client.post("/keys", json={"role": "admin"}, headers=bearer("anything"))
    assert planted.status_code == 401 and [k.id for k in ring.list()] == [record.id]  # no anonymous admin key
    assert client.post("/documents", files=[("files", ("x.txt", b"Planted."))], headers=bearer("anything")).status_code == 401
    assert client.get("/health").json().keys() == {"status", "version"} and client.get("/").status_code == 200  # liveness and the page


def test_a_service_off_loopback_never_opens_even_if_its_keys_vanish(hr_qa: RagQA, tmp_path: Path) -> None:
    """`serve --host 0.0.0.0` runs in "keys" mode: an index whose key records are gone (an old backup
    restored) answers 401, not as an open service; --no-auth is the one way to open it."""
    from rag_qa.server.auth import service_mode, startup_mode

    assert startup_mode("0.0.0.0", no_auth=False, has_keys=True) == "keys" and startup_mode("127.0.0.1", no_auth=False, has_keys=False) == "auto"
    assert startup_mode("0.0.0.0", no_auth=True, has_keys=True) == "off"
    assert startup_mode("127.0.0.1", False, True, ("127.0.0.1", "localhost", "::1")) == "auto"
    assert startup_mode("127.0.0.1", False, True, ("127.0.0.1", "kb.example.com")) == "keys"  # behind a proxy (found in review)
    with pytest.raises(RagQAError, match="without API keys"):
        startup_mode("127.0.0.1", False, False, ("kb.example.com",))
    client = client_of(app_over(hr_qa, tmp_path, auth="keys"))
    refused = client.post("/ask", json=QUESTION)
    assert refused.status_code == 401 and "ZEBRA" not in refused.text
    ring = KeyRing(hr_qa.store)
    assert service_mode("keys", ring) == "closed" and service_mode("auto", ring) == "open" and service_mode("off", ring) == "open"
    record, _ = ring.create("reader")
    assert service_mode("auto", ring) == "keyed"
    ring.revoke(record.id)
    assert service_mode("auto", ring) == "closed" and ring.any_key() and not ring.any_active()


def test_an_upload_without_a_key_that_may_upload_is_refused_before_its_body_is_read(
    hr_qa: RagQA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    import tempfile

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the multipart parser would spool the upload
    ring = KeyRing(hr_qa.store)
    (_, reader), (_, editor) = ring.create("reader"), ring.create("editor")
    app = CountingBody(app_over(hr_qa, tmp_path, max_upload_mb=1))
    client = client_of(app)
    big = [("files", ("big.txt", b"word " * 1_000_000))]  # 5 MB
    for headers, status in (({}, 401), (bearer("rq_000000000000_" + "A" * 43), 401), (bearer("not-a-key"), 401), (bearer(reader), 403)):
        refused = client.post("/documents", files=big, headers=headers)
        assert (refused.status_code, app.read) == (status, 0), refused.text  # answered before one byte of the body was read
    too_large = client.post("/documents", files=big, headers=bearer(editor))
    assert (too_large.status_code, app.read) == (413, 0)  # the body limit still refuses from Content-Length
    assert files_under(tmp_path / "uploads") == [] and files_under(temp) == []
    small = client.post("/documents", files=[("files", ("shed.txt", b"The shed opens at nine."))], headers=bearer(editor))
    assert small.status_code == 200 and app.read > 0  # (the count does count)


def test_failed_key_checks_are_audited_and_limited_per_address(hr_qa: RagQA, tmp_path: Path) -> None:
    from rag_qa import audit

    ring = KeyRing(hr_qa.store)
    good, token = ring.create("reader", name="good")
    gone, gone_token = ring.create("reader", name="gone")
    ring.revoke(gone.id)
    app = app_over(hr_qa, tmp_path, auth_failures="3/minute")
    client, neighbour = client_of(app), client_of(app, "10.1.2.3")
    wrong_secret = f"rq_{good.id}_" + "A" * 43
    assert [client.get("/documents").status_code for _ in range(4)] == [401] * 4  # no key at all: not a failed check
    for attempt in (wrong_secret, "not-a-key", gone_token):
        assert client.get("/documents", headers=bearer(attempt)).status_code == 401
    limited = client.get("/documents", headers=bearer(wrong_secret))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0, limited.text
    assert client.post("/ask", json=QUESTION, headers=bearer(token)).status_code == 200  # others' failures never lock a valid key out
    assert client.get("/documents", headers=bearer("rq_000000000000_" + "B" * 43)).status_code == 429
    assert neighbour.get("/documents", headers=bearer(token)).status_code == 200  # each address counts alone
    failed = [e for e in audit.events(hr_qa.store) if e["action"] == "failed key check"]
    assert [(e["target"], e["address"]) for e in failed] == [(good.id, "testclient"), ("-", "testclient"), (gone.id, "testclient")]  # the 4th: not recorded
    said = json.dumps(failed)
    assert wrong_secret not in said and "A" * 43 not in said and gone_token.split("_", 2)[2] not in said and "not-a-key" not in said


def test_a_loopback_service_that_has_had_keys_stays_keyed_when_its_key_records_vanish(hr_qa: RagQA, tmp_path: Path) -> None:
    """A review found that deleting the key records (or restoring an old copy of them into a live
    index) reopened an "auto" service on loopback: anonymous reads and an anonymous admin key."""
    ring = KeyRing(hr_qa.store)
    record, _ = ring.create("reader")
    client = client_of(app_over(hr_qa, tmp_path))
    assert client.post("/ask", json=QUESTION).status_code == 401
    (hr_qa.store.path / f"api-key-{record.id}.json").unlink()  # the key records vanish
    assert client.post("/ask", json=QUESTION).status_code == 401  # this process has seen a key
    assert client.post("/keys", json={"role": "admin"}, headers=bearer("anything")).status_code == 401
    fresh = client_of(app_over(hr_qa, tmp_path))  # a new process: the index records that it held a key
    refused = fresh.post("/search", json={"query": "salary code word"})
    assert refused.status_code == 401 and "ZEBRA" not in refused.text


def test_a_revocation_holds_even_when_its_audit_event_cannot_be_written(hr_qa: RagQA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: failing closed on the audit log kept a leaked key working."""
    ring = KeyRing(hr_qa.store)
    record, token = ring.create("reader")

    def refused(event: dict) -> int:
        raise RagQAError("the audit log refuses writes")

    monkeypatch.setattr(hr_qa.store, "append_event", refused)
    with pytest.raises(RagQAError, match="is revoked, but the audit log could not record it"):
        ring.revoke(record.id, by="cli:ops")
    assert ring.verify(token) is None


def test_a_damaged_key_record_tells_an_unknown_caller_nothing(hr_qa: RagQA, tmp_path: Path) -> None:
    record, token = KeyRing(hr_qa.store).create("reader")
    (hr_qa.store.path / f"api-key-{record.id}.json").write_text("{ not json")
    answered = client_of(app_over(hr_qa, tmp_path)).post("/ask", json=QUESTION, headers=bearer(token))
    assert answered.status_code == 503 and str(hr_qa.store.path) not in answered.text and "api-key" not in answered.text


def test_a_full_disk_or_a_failure_tells_the_caller_no_paths_or_free_space(
    hr_qa: RagQA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # fmt: skip
    import errno
    import shutil
    import sqlite3

    from rag_qa.errors import StoreUnavailable
    from rag_qa.server import body_limit

    _, editor = KeyRing(hr_qa.store).create("editor")
    app = app_over(hr_qa, tmp_path)
    client = client_of(app)

    def tells_nothing(response) -> None:
        said = response.json()["error"]
        assert response.status_code >= 500 and "/" not in said and "MB" not in said and str(tmp_path) not in response.text, response.text

    real_usage = shutil.disk_usage
    monkeypatch.setattr(body_limit.shutil, "disk_usage", lambda folder: real_usage(folder)._replace(free=1000))
    full = client.post("/documents", files=[("files", ("a.txt", b"x" * 5000))], headers=bearer(editor))
    assert full.status_code == 507 and "disk is full" in full.json()["error"]
    tells_nothing(full)
    assert "MB free" in caplog.text and "disk holding /" in caplog.text  # the operator's log has the detail
    monkeypatch.setattr(body_limit.shutil, "disk_usage", real_usage)
    service = type(app.state.service)
    place = str(tmp_path / "index" / "store.db")
    for failure in (OSError(errno.ENOSPC, "No space left on device", place), OSError(errno.EACCES, "Permission denied", place),
                    sqlite3.DatabaseError(f"unable to open {place}"), StoreUnavailable(f"PostgreSQL at {place} cannot be reached")):  # fmt: skip
        def fail(*_, failure=failure):
            raise failure

        monkeypatch.setattr(service, "documents", fail)
        tells_nothing(client.get("/documents", headers=bearer(editor)))
