"""Replicas that act as one service: two (or more) real `rag-qa serve` processes on one PostgreSQL
database, each with an upload folder of its own, as behind a load balancer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import REPO, cli_env
from service_process import start_service, stop

from rag_qa.keys import KeyRing
from rag_qa.store import open_store

pytestmark = pytest.mark.integration
RATE = 20  # requests per minute per key, for the whole fleet


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def database(postgres_server: str) -> str:
    """One index on the session's PostgreSQL server, with the sample handbook indexed."""
    index = f"{postgres_server}#fleet_{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [sys.executable, "-m", "rag_qa.cli", "index", str(REPO / "data" / "handbook.md"), "--index", index, "--quiet"], env=cli_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return index


def new_key(index: str, role: str, groups: tuple[str, ...] = ()) -> tuple[str, str]:
    """(key id, token) of a new key, made as an admin on the server would."""
    with open_store(index) as store:
        record, token = KeyRing(store).create(role, groups, name=f"{role}-{uuid.uuid4().hex[:6]}")
    return record.id, token


@pytest.fixture(scope="module")
def fleet(database: str, tiny_bert: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Replicas A and B (their URLs), each with its own upload folder."""
    new_key(database, "admin")  # a keyed index: loopback services then need keys
    a, url_a = start_service(database, tiny_bert, "--upload-dir", str(tmp_path_factory.mktemp("uploads-a")), "--rate-limit", f"{RATE}/minute")
    try:
        b, url_b = start_service(database, tiny_bert, "--upload-dir", str(tmp_path_factory.mktemp("uploads-b")), "--rate-limit", f"{RATE}/minute")
    except BaseException:
        stop(a)
        raise
    try:
        yield url_a, url_b
    finally:
        stop(a), stop(b)


def upload(url: str, token: str, name: str, content: bytes, groups: str = "") -> httpx.Response:
    return httpx.post(f"{url}/documents", files=[("files", (name, content))], data={"groups": groups}, headers=bearer(token), timeout=120)


def test_an_upload_through_one_replica_is_searched_shown_and_rendered_through_the_other(database: str, fleet: tuple[str, str], tmp_path: Path) -> None:
    url_a, url_b = fleet
    _, editor = new_key(database, "editor")
    pdf = (REPO / "data" / "safety-guide.pdf").read_bytes()
    done = upload(url_a, editor, "guide-fleet.pdf", pdf)
    assert done.status_code == 200 and done.json()["files_indexed"] == 1, done.text
    source = done.json()["documents"][0]["source"]
    assert not Path(source).exists()  # the index keeps it: replica A's folder held it only while it was read

    listed = httpx.get(f"{url_b}/documents", headers=bearer(editor), timeout=30).json()["documents"]
    assert [d["source"] for d in listed if d["name"] == "guide-fleet.pdf"] == [source]
    hits = httpx.post(f"{url_b}/search", json={"query": "safety goggles", "filters": {"sources": ["guide-fleet.pdf"]}}, headers=bearer(editor), timeout=60)
    assert hits.status_code == 200 and hits.json()["results"] and {h["source"] for h in hits.json()["results"]} == {source}
    text = httpx.get(f"{url_b}/documents/guide-fleet.pdf/text", params={"page": 1}, headers=bearer(editor), timeout=30)
    assert text.status_code == 200 and text.json()["text"].strip()
    image = httpx.get(f"{url_b}/documents/guide-fleet.pdf/pages/1.png", params={"width": 300}, headers=bearer(editor), timeout=60)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG"), image.text
    start = text.json()["text"].index(text.json()["text"].strip()[:5])
    boxes = httpx.get(f"{url_b}/documents/guide-fleet.pdf/boxes", params={"start": start, "end": start + 5}, headers=bearer(editor), timeout=60)
    assert boxes.status_code == 200 and boxes.json()["boxes"], boxes.text

    again = upload(url_b, editor, "guide-fleet.pdf", pdf)  # B knows the name A's upload took
    assert again.status_code == 409 and "replace=true" in again.json()["error"]
    removed = httpx.delete(f"{url_b}/documents/guide-fleet.pdf", headers=bearer(editor), timeout=60)
    assert removed.status_code == 200 and removed.json()["source"] == source
    assert httpx.get(f"{url_a}/documents/guide-fleet.pdf/text", headers=bearer(editor), timeout=30).status_code == 404
    with open_store(database, read_only=True) as store:
        assert source not in store.original_sources() and store.original(source) is None


def test_a_key_revoked_on_one_replica_fails_on_the_other_at_once(database: str, fleet: tuple[str, str]) -> None:
    url_a, url_b = fleet
    _, admin = new_key(database, "admin")
    made = httpx.post(f"{url_a}/keys", json={"role": "reader", "name": "fleet reader"}, headers=bearer(admin), timeout=30).json()
    assert httpx.post(f"{url_b}/search", json={"query": "loan"}, headers=bearer(made["key"]), timeout=60).status_code == 200
    assert httpx.delete(f"{url_a}/keys/{made['id']}", headers=bearer(admin), timeout=30).status_code == 200
    refused = httpx.post(f"{url_b}/search", json={"query": "loan"}, headers=bearer(made["key"]), timeout=60)  # the very next request
    assert refused.status_code == 401


def test_a_group_change_on_one_replica_is_enforced_on_the_other(database: str, fleet: tuple[str, str]) -> None:
    url_a, url_b = fleet
    _, editor = new_key(database, "editor", ("ops",))
    _, reader = new_key(database, "reader", ("sales",))
    _, admin = new_key(database, "admin")  # (an editor may give only groups it holds)
    assert upload(url_a, editor, "ops-fleet.txt", b"The forklift key hangs in the ops cabinet.", groups="ops").status_code == 200
    names = lambda url: [d["name"] for d in httpx.get(f"{url}/documents", headers=bearer(reader), timeout=30).json()["documents"]]  # noqa: E731
    assert "ops-fleet.txt" not in names(url_a)
    assert httpx.put(f"{url_b}/documents/ops-fleet.txt/groups", json={"groups": ["ops", "sales"]}, headers=bearer(admin), timeout=30).status_code == 200
    assert "ops-fleet.txt" in names(url_a)
    assert httpx.put(f"{url_b}/documents/ops-fleet.txt/groups", json={"groups": ["ops"]}, headers=bearer(admin), timeout=30).status_code == 200
    assert "ops-fleet.txt" not in names(url_a)
    assert httpx.get(f"{url_a}/documents/ops-fleet.txt/text", headers=bearer(reader), timeout=30).status_code == 404


def test_the_audit_trail_holds_both_replicas_events_in_order(database: str, fleet: tuple[str, str]) -> None:
    url_a, url_b = fleet
    _, admin = new_key(database, "admin")
    steps = [(url_a, "audit-1.txt"), (url_b, "audit-2.txt"), (url_a, "audit-3.txt"), (url_b, "audit-4.txt")]
    request_ids = []
    for url, name in steps:
        request_id = f"fleet-{uuid.uuid4().hex[:8]}"
        done = httpx.post(f"{url}/documents", files=[("files", (name, b"Audit line for " + name.encode()))], headers=bearer(admin) | {"X-Request-ID": request_id}, timeout=120)
        assert done.status_code == 200 and done.headers["x-request-id"] == request_id
        request_ids.append(request_id)
    events = httpx.get(f"{url_b}/audit", params={"last": 50}, headers=bearer(admin), timeout=30).json()["events"]
    uploads = [e for e in events if e["action"] == "upload" and os.path.basename(e["target"]).startswith("audit-")]
    assert [os.path.basename(e["target"]) for e in uploads] == [name for _, name in steps]  # in the order they were made, across replicas
    assert [e["request_id"] for e in uploads] == request_ids
    assert [e["id"] for e in uploads] == sorted(e["id"] for e in uploads)


def test_a_fleet_rate_limit_admits_its_number_across_both_replicas(database: str, fleet: tuple[str, str]) -> None:
    url_a, url_b = fleet
    _, reader = new_key(database, "reader")
    answers = [httpx.post(f"{(url_a, url_b)[n % 2]}/search", json={"query": "loan"}, headers=bearer(reader), timeout=60) for n in range(RATE + 2)]
    statuses = [a.status_code for a in answers]
    assert statuses[:RATE] == [200] * RATE and statuses[RATE:] == [429, 429], statuses
    assert int(answers[-1].headers["retry-after"]) >= 1


def in_flight(url: str, token: str, route: str) -> float:
    """Requests to `route` this replica is answering now (its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", headers=bearer(token), timeout=30).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "rag_qa_requests_in_progress" and s.labels.get("route") == route)


def test_sigterm_during_a_question_answers_it_then_exits(database: str, tiny_bert: str, tmp_path: Path) -> None:
    _, admin = new_key(database, "admin")
    process, url = start_service(database, tiny_bert, "--upload-dir", str(tmp_path / "up"), "--batch-wait-ms", "1000", "--drain", "3")
    answered: list[httpx.Response] = []
    asking = threading.Thread(target=lambda: answered.append(httpx.post(f"{url}/ask", json={"question": "How long is the loan period?"}, headers=bearer(admin), timeout=120)))
    try:
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200
        asking.start()
        while not in_flight(url, admin, "/ask"):  # the question is being answered (the batch waits 1 s for company)
            assert asking.is_alive(), answered
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        ready = httpx.get(f"{url}/ready", timeout=30)  # still serving, no longer ready: the load balancer stops sending
        asking.join(120)
        assert ready.status_code == 503 and "draining" in ready.json()["error"]
        assert answered and answered[0].status_code == 200 and answered[0].json()["answers"], answered
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_kill_9_during_an_upload_leaves_it_complete_or_absent(database: str, tiny_bert: str, tmp_path: Path) -> None:
    _, editor = new_key(database, "editor")
    folder = tmp_path / "up"
    process, url = start_service(database, tiny_bert, "--upload-dir", str(folder))
    sentences = " ".join(f"Bench {n} in hall {n % 7} was repainted on day {n % 31} by crew {n % 11}." for n in range(3000)).encode()
    sending = threading.Thread(target=lambda: _ignore_errors(lambda: upload(url, editor, "killed.txt", sentences)))
    try:
        sending.start()
        while not any(path.name == "killed.txt" for path in folder.rglob("*")):  # saved; now being indexed
            assert sending.is_alive()
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(60)
        sending.join(120)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    with open_store(database, read_only=True) as store:
        killed = [f for f in store.files() if os.path.basename(f["source"]) == "killed.txt"]
        rows = sum(1 for passage, _ in store.iter_passages() if os.path.basename(passage.source or "") == "killed.txt")
        if killed:  # complete: every passage, and the original with them
            assert rows == killed[0]["passages"] > 0 and store.original(killed[0]["source"]) == sentences
        else:  # absent: nothing of it
            assert rows == 0 and not any(os.path.basename(s) == "killed.txt" for s in store.original_sources())
        assert store.check() == []


def _ignore_errors(call) -> None:  # noqa: ANN001 (the connection breaks when the replica is killed)
    try:
        call()
    except httpx.HTTPError:
        pass


def test_the_example_replica_unit_runs_a_command_rag_qa_accepts() -> None:
    """deploy/rag-qa@.service with deploy/replica.env filled in parses as `rag-qa serve` does,
    and the settings every replica must share come from the shared file."""
    import re
    import shlex

    from rag_qa.cli import build_parser

    settings = dict(line.split("=", 1) for line in (REPO / "deploy" / "replica.env").read_text().splitlines() if line and not line.startswith("#"))
    unit = (REPO / "deploy" / "rag-qa@.service").read_text()
    command = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).replace("%i", "8001")
    filled = re.sub(r"\$\{(\w+)\}", lambda m: settings[m.group(1)], command)
    args = build_parser().parse_args(shlex.split(filled)[1:])
    assert (args.index, args.port, args.rate_limit, args.log_format) == (settings["RAG_QA_INDEX"], 8001, settings["RAG_QA_RATE_LIMIT"], "json")
    assert args.drain + args.stop_timeout < float(re.search(r"^TimeoutStopSec=(\d+)", unit, re.M).group(1))  # systemd waits for the graceful stop
    caddy = (REPO / "deploy" / "Caddyfile").read_text()
    assert "health_uri /ready" in caddy and "127.0.0.1:8001 127.0.0.1:8002" in caddy
    assert f"Host {settings['RAG_QA_HOST']}" in caddy  # the probe names an allowed host, or every replica looks down
