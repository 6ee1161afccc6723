"""Limits that hold while a body streams in: a real `rag-qa serve` process, a chunked upload
(curl) and a chunked JSON body (httpx) larger than their limits get 413 without the body reaching
the disk or memory; the upload folder and the temporary folder stay as they were."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import REPO, cli_env
from service_process import start_service, stop

httpx = pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_bert: str):
    """An open loopback service with a 1 MB upload limit and a 4 kB JSON limit; its temporary files go to a folder of its own."""
    folder = tmp_path_factory.mktemp("limits")
    index, uploads, temp = folder / "index", folder / "uploads", folder / "tmp"
    temp.mkdir()
    subprocess.run(
        [__import__("sys").executable, "-m", "rag_qa.cli", "index", str(REPO / "data" / "handbook.md"), "--index", str(index), "--quiet"],
        check=True, env=cli_env(), capture_output=True,
    )  # fmt: skip
    limits = ("--max-upload-mb", "1", "--max-json-kb", "4", "--upload-dir", str(uploads))
    process, url = start_service(str(index), tiny_bert, *limits, env=cli_env(TMPDIR=str(temp)))
    yield url, uploads, temp
    stop(process)


def test_a_chunked_upload_over_the_limit_stops_at_the_limit(service, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    url, uploads, temp = service
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * 1_000_000)  # 5 MB against a 1 MB limit
    before = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
    temp_before = sorted(str(p) for p in temp.rglob("*"))
    curl = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H", "Transfer-Encoding: chunked", "-H", "Authorization: Bearer open",
         "-F", f"files=@{big}", f"{url}/documents"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    body, status = curl.stdout.rsplit("\n", 1)
    assert status == "413" and "passed 1.1 MB while streaming" in body, curl.stdout[-500:]
    assert (sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []) == before
    assert sorted(str(p) for p in temp.rglob("*")) == temp_before  # nothing spooled was left behind
    small = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Transfer-Encoding: chunked", "-H", "Authorization: Bearer open",
         "-F", f"files=@{REPO / 'data' / 'faq.html'}", f"{url}/documents"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert small.stdout == "200"  # the same path, under the limit


def test_a_json_body_is_limited_chunked_or_not(service) -> None:
    url, _, _ = service

    def chunks():
        yield b'{"question": "'
        for _ in range(10_000):
            yield b"why " * 256  # 10 MB in all, never declared
        yield b'"}'

    streamed = httpx.post(f"{url}/ask", content=chunks(), headers={"Content-Type": "application/json"}, timeout=60)
    assert streamed.status_code == 413 and "kB" in streamed.json()["error"]
    declared = httpx.post(f"{url}/ask", json={"question": "why " * 2000}, timeout=60)
    assert declared.status_code == 413 and declared.json()["error"].startswith("the request is 0.0 MB")
    assert httpx.post(f"{url}/ask", json={"question": "Who runs the library?"}, timeout=60).status_code == 200


def test_foreign_hosts_other_origins_and_callers_over_their_rate_are_refused(tmp_path: Path, tiny_bert: str) -> None:
    import json
    import sys

    index = str(tmp_path / "index")
    run = [sys.executable, "-m", "rag_qa.cli"]
    subprocess.run([*run, "index", str(REPO / "data" / "handbook.md"), "--index", index, "--quiet"], check=True, env=cli_env(), capture_output=True)
    keys = [json.loads(subprocess.run([*run, "keys", "create", "--role", "reader", "--index", index, "--json"], check=True, env=cli_env(), capture_output=True, text=True).stdout)["key"] for _ in range(2)]
    process, url = start_service(index, tiny_bert, "--rate-limit", "5/hour", "--cors-origin", "https://intranet.example")
    try:
        first, second = ({"Authorization": f"Bearer {key}"} for key in keys)
        rebound = httpx.get(f"{url}/documents", headers={**first, "Host": "attacker.example"}, timeout=30)
        assert rebound.status_code == 400  # a DNS-rebinding page reaches the port under its own name
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
        foreign = httpx.options(f"{url}/ask", headers={**preflight, "Origin": "https://attacker.example"}, timeout=30)
        assert "access-control-allow-origin" not in foreign.headers
        allowed = httpx.options(f"{url}/ask", headers={**preflight, "Origin": "https://intranet.example"}, timeout=30)
        assert allowed.headers["access-control-allow-origin"] == "https://intranet.example"
        statuses = [httpx.get(f"{url}/documents", headers=second, timeout=30).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        limited = httpx.get(f"{url}/documents", headers=second, timeout=30)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0 and "5/hour" in limited.json()["error"]
        assert httpx.get(f"{url}/documents", headers=first, timeout=30).status_code == 200  # each key counts alone
    finally:
        stop(process)
