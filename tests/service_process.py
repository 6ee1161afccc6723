"""A real `rag-qa serve` process on a free loopback port, for tests that drive the service as its
users do (httpx, curl, a browser)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
from helpers import cli_env

from rag_qa.server.background import free_port


def start_service(index: str, reader: str, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `rag-qa serve` (extra options appended) and wait until /ready answers (models loaded); returns the process and its URL."""
    port = free_port()
    drain = () if "--drain" in extra else ("--drain", "0")  # no load balancer to tell: stop() need not wait
    command = [sys.executable, "-m", "rag_qa.cli", "serve", "--index", index, "--reader", reader, "--port", str(port), "--log-level", "warning", *drain, *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or cli_env())
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
            time.sleep(0.2)
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"rag-qa serve did not start: {process.communicate()[1][-2000:]}")


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    return process.communicate(timeout=60)[1]
