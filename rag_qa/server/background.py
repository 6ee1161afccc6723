"""The service on a free loopback port in a background thread: for tests, notebooks and scripts
(`rag-qa serve` is the way to run it for users)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rag_qa.config import ServerConfig
from rag_qa.pipeline import RagQA


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_service(qa: RagQA, config: ServerConfig) -> Iterator[str]:
    """Serve `qa` with uvicorn until the block ends; yields the base URL."""
    import uvicorn

    from rag_qa.server import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(qa, config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the rag-qa service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
