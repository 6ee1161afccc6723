"""What an operator sees of the service: `/metrics` (parsed with prometheus-client's own parser,
counts moving by exactly the requests made, route templates as labels, an admin key on a keyed
service), request ids (taken when safe, made otherwise, returned on every answer, kept in the
audit trail and the access log) and `--log-format json`. In process, over a real FAISS index and
the real embedder, except one real `rag-qa serve --log-format json` process."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import REPO, one_note_index

from rag_qa import audit
from rag_qa.errors import RagQAError
from rag_qa.keys import KeyRing
from rag_qa.pipeline import RagQA

pytest.importorskip("prometheus_client", reason="the metrics need prometheus-client (pip install -e '.[server]')")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

NOTE = "The Harborview Tool Library lends drills for seven days. Late returns cost two dollars a day."
OPEN = {"Authorization": "Bearer any"}  # an open service still wants a bearer header for admin routes
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def qa(tmp_path: Path, embedder, tiny_bert: str):
    """An index holding one short note, with the real embedder and a tiny reader."""
    with one_note_index(tmp_path, embedder, tiny_bert, "library.txt", NOTE) as opened:
        yield opened


def client_over(qa: RagQA, tmp_path: Path):
    from starlette.testclient import TestClient

    from rag_qa.config import ServerConfig
    from rag_qa.server import create_app

    config = ServerConfig(upload_dir=str(tmp_path / "uploads"), allowed_hosts=("testserver",), rate_limit="", auth_failures="")
    return TestClient(create_app(qa, config), raise_server_exceptions=False)


def scrape(client, headers: dict[str, str] = OPEN) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, by name and labels, read with prometheus-client's parser."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: dict, route: str, method: str, status: int) -> float:
    return value(samples, "rag_qa_http_requests_total", route=route, method=method, status=str(status))


def test_metrics_count_asks_by_route_template_and_apps_count_apart(qa: RagQA, tmp_path: Path) -> None:
    client, other = client_over(qa, tmp_path), client_over(qa, tmp_path / "other")
    before = scrape(client)
    asks = [client.post("/ask", json={"question": question, "top_k": 2}) for question in ("How long may I keep a drill?", "What do late returns cost?", "Who runs it?")]
    assert [a.status_code for a in asks] == [200] * 3
    missing = client.get("/documents/nothing-here.txt/text")
    assert missing.status_code == 404
    assert client.get("/no/such/page").status_code == 404
    assert client.request("BREW", "/ask").status_code == 405
    after = scrape(client)

    assert requests(after, "/ask", "POST", 200) - requests(before, "/ask", "POST", 200) == 3
    ask_count = ("rag_qa_request_duration_seconds_count", {"operation": "ask"})
    assert value(after, ask_count[0], **ask_count[1]) - value(before, ask_count[0], **ask_count[1]) == 3
    assert value(after, "rag_qa_request_duration_seconds_count", operation="search") == 0
    assert value(after, "rag_qa_reader_batch_questions_sum") - value(before, "rag_qa_reader_batch_questions_sum") == 3  # every question in some batch
    assert value(after, "rag_qa_reader_passages_requested_total") - value(before, "rag_qa_reader_passages_requested_total") == 3 * 2
    assert value(after, "rag_qa_ask_queue_depth") == 0  # every question was answered: none waits
    assert requests(after, "/documents/{source:path}/text", "GET", 404) == 1
    assert requests(after, "unmatched", "GET", 404) == 1 and requests(after, "/ask", "other", 405) == 1
    assert requests(after, "/metrics", "GET", 200) == 1  # the first scrape (the second is counted once it is sent)
    routes = {dict(labels)["route"] for name, labels in after if name == "rag_qa_http_requests_total"}
    assert not any("nothing-here" in route or "/no/such" in route for route in routes)  # never the raw URL

    elsewhere = scrape(other)  # another app over the same index, in the same process: its own registry
    assert requests(elsewhere, "/ask", "POST", 200) == 0 and value(elsewhere, "rag_qa_reader_batch_questions_count") == 0
    assert value(elsewhere, "rag_qa_index_passages") == value(after, "rag_qa_index_passages") == qa.store.count()


def test_an_upload_moves_the_index_gauges_and_the_ingestion_counters(qa: RagQA, tmp_path: Path) -> None:
    client = client_over(qa, tmp_path)
    before = scrape(client)
    assert value(before, "rag_qa_index_documents") == 1 and value(before, "rag_qa_index_passages") == qa.store.count() > 0
    pdf = (REPO / "data" / "late-returns-notice.pdf").read_bytes()
    files = [("files", ("notice.pdf", pdf)), ("files", ("shed.txt", b"The shed opens at nine.")), ("files", ("empty.txt", b"   "))]
    uploaded = client.post("/documents", files=files, headers=OPEN)
    assert uploaded.status_code == 200, uploaded.text
    report = uploaded.json()
    assert report["files_indexed"] == 2 and report["pages"] >= 1
    after = scrape(client)
    assert value(after, "rag_qa_index_documents") == 3
    assert value(after, "rag_qa_index_passages") - value(before, "rag_qa_index_passages") == report["passages_added"] > 0
    assert value(after, "rag_qa_ingest_pages_total") - value(before, "rag_qa_ingest_pages_total") == report["pages"]
    assert value(after, "rag_qa_ingest_files_total", outcome="indexed") - value(before, "rag_qa_ingest_files_total", outcome="indexed") == 2
    assert value(after, "rag_qa_ingest_files_total", outcome="failed") - value(before, "rag_qa_ingest_files_total", outcome="failed") == 1
    upload_count = "rag_qa_request_duration_seconds_count"
    assert value(after, upload_count, operation="upload") - value(before, upload_count, operation="upload") == 1


def test_on_a_keyed_service_only_an_admin_key_reads_the_metrics(qa: RagQA, tmp_path: Path) -> None:
    ring = KeyRing(qa.store)
    tokens = {role: ring.create(role, name=f"{role} key")[1] for role in ("reader", "editor", "admin")}
    client = client_over(qa, tmp_path)
    refused = client.get("/metrics")
    assert refused.status_code == 401 and "rag_qa_" not in refused.text
    for role in ("reader", "editor"):
        denied = client.get("/metrics", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert denied.status_code == 403 and "admin" in denied.json()["error"] and "rag_qa_" not in denied.text
    samples = scrape(client, {"Authorization": f"Bearer {tokens['admin']}"})
    assert requests(samples, "/metrics", "GET", 401) == 1 and requests(samples, "/metrics", "GET", 403) == 2


def test_request_ids_are_taken_when_safe_made_otherwise_and_returned_on_every_answer(qa: RagQA, tmp_path: Path) -> None:
    client = client_over(qa, tmp_path)
    given = "edge-7f3a.2024:01_x"
    assert client.get("/health", headers={"X-Request-ID": given}).headers["x-request-id"] == given
    for malformed in ("has space", "a" * 129, b"x\xe9", "", "a/b"):
        made = client.get("/health", headers={"X-Request-ID": malformed}).headers["x-request-id"]
        assert GENERATED.fullmatch(made), (malformed, made)
    first, second = (client.get("/documents").headers["x-request-id"] for _ in range(2))
    assert GENERATED.fullmatch(first) and first != second
    for response in (client.get("/documents/absent.txt/text"), client.post("/ask", json={}), client.post("/documents", files=[("files", ("a.txt", b"x"))])):
        assert response.status_code in (401, 404, 422) and GENERATED.fullmatch(response.headers["x-request-id"]), response.status_code


def test_an_unhandled_error_still_answers_json_with_its_request_id(qa: RagQA, tmp_path: Path) -> None:
    client = client_over(qa, tmp_path)

    def broken() -> None:  # an endpoint of this test's own: the failure no handler knows
        raise LookupError("a bug")

    client.app.add_api_route("/broken", broken)
    failed = client.get("/broken", headers={"X-Request-ID": "bug-1"})
    assert (failed.status_code, failed.headers["x-request-id"]) == (500, "bug-1")
    assert "try again later" in failed.json()["error"] and "a bug" not in failed.text
    assert requests(scrape(client), "/broken", "GET", 500) == 1


def test_audit_events_carry_the_request_id(qa: RagQA, tmp_path: Path) -> None:
    ring = KeyRing(qa.store)
    _, editor = ring.create("editor", name="uploader", by="cli:ops")
    client = client_over(qa, tmp_path)
    uploaded = client.post("/documents", files=[("files", ("shed.txt", b"The shed opens at nine."))], headers={"Authorization": f"Bearer {editor}", "X-Request-ID": "upload-42"})
    assert uploaded.status_code == 200, uploaded.text
    bad = client.get("/documents", headers={"Authorization": "Bearer not-a-key", "X-Request-ID": "probe-9"})  # checked by the gate, in its own thread
    assert bad.status_code == 401
    events, _ = audit.page(qa.store)
    said = {e["action"]: e for e in events}
    assert said["upload"]["request_id"] == "upload-42" and said["upload"]["target"].endswith("shed.txt")
    assert said["failed key check"]["request_id"] == "probe-9"
    assert "request_id" not in said["create key"]  # made outside any request (as by the command line)


def test_an_event_takes_the_request_id_beside_its_details() -> None:
    assert "request_id" not in audit.event("cli:ops", "delete", "a.txt")["details"]
    token = audit.REQUEST_ID.set("r-1")
    try:
        assert audit.event("ops", "delete", "a.txt", replace=None)["details"] == {"request_id": "r-1", "replace": None}
        assert audit.event("ops", "delete", "a.txt", request_id="mine")["details"] == {"request_id": "mine"}
        with pytest.raises(RagQAError, match="may not be named at"):
            audit.event("ops", "delete", "a.txt", at=1)
    finally:
        audit.REQUEST_ID.reset(token)
    assert audit.REQUEST_ID.get() is None


def test_each_request_gets_one_access_log_line_with_its_id(qa: RagQA, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from rag_qa.server.observe import JsonFormatter

    client = client_over(qa, tmp_path)
    with caplog.at_level(logging.INFO, logger="rag_qa.server.access"):
        client.get("/documents/missing.txt/text", headers={"X-Request-ID": "look-1"})
    lines = [r for r in caplog.records if r.name == "rag_qa.server.access"]
    assert len(lines) == 1
    logged = json.loads(JsonFormatter().format(lines[0]))  # formatted later, outside the request: the id travels with the record
    assert logged["request_id"] == "look-1" and logged["logger"] == "rag_qa.server.access" and logged["level"] == "INFO"
    assert (logged["method"], logged["route"], logged["status"], logged["client"]) == ("GET", "/documents/{source:path}/text", 404, "testclient")
    assert logged["duration_ms"] >= 0 and "/documents/{source:path}/text 404" in logged["message"]


def test_the_json_formatter_writes_one_parseable_object_per_record() -> None:
    from rag_qa.server.observe import JsonFormatter

    formatter = JsonFormatter()
    plain = logging.LogRecord("rag_qa.server", logging.WARNING, __file__, 1, "store %s is slow", ("x",), None)
    entry = json.loads(formatter.format(plain))
    assert entry.keys() == {"time", "level", "logger", "message"} and entry["message"] == "store x is slow" and entry["level"] == "WARNING"
    assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)
    token = audit.REQUEST_ID.set("req-5")
    try:
        try:
            1 / 0
        except ZeroDivisionError:
            import sys

            failed = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "line one\nline two", (), sys.exc_info())
        entry = json.loads(formatter.format(failed))
    finally:
        audit.REQUEST_ID.reset(token)
    assert entry["request_id"] == "req-5" and entry["message"] == "line one\nline two" and "ZeroDivisionError" in entry["exc_info"]


@pytest.mark.integration
def test_serve_with_json_logs_writes_only_json_lines(tmp_path: Path, tiny_bert: str) -> None:
    import httpx
    from service_process import start_service, stop

    index = str(tmp_path / "index")
    with RagQA.open(index) as opened:
        opened.index([str(REPO / "data" / "handbook.md")])
        _, token = KeyRing(opened.store).create("admin")  # keyed: the open-service notice is a plain print of `auth`
    process, url = start_service(index, tiny_bert, "--log-format", "json", "--log-level", "info")
    try:
        key = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/documents", headers={**key, "X-Request-ID": "trace-77"}, timeout=60).status_code == 200
        assert httpx.get(f"{url}/metrics", headers=key, timeout=60).status_code == 200
    finally:
        said = stop(process)
    entries = [json.loads(line) for line in said.splitlines() if line.strip()]  # fails on any line that is not JSON
    access = [e for e in entries if e["logger"] == "rag_qa.server.access"]
    assert [(e["route"], e["status"], e["request_id"]) for e in access if e["route"] == "/documents"] == [("/documents", 200, "trace-77")]
    assert any(e["logger"].startswith("uvicorn") for e in entries) and not any(e["logger"] == "uvicorn.access" for e in entries)
    assert any("rag-qa serving" in e["message"] for e in entries)
