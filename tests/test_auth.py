"""API keys and roles: keys kept hashed with the index (FAISS folder and PostgreSQL), the `rag-qa keys`
command, and a real `rag-qa serve` process that lets each role do exactly what it may (the full
matrix of endpoints x callers: 200, 401 or 403), refuses to run open off loopback, and becomes keyed
as soon as the index holds a key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, SAMPLE_FILES, cli_env
from service_process import start_service, stop

from rag_qa.errors import ConfigError, NotFoundError
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
