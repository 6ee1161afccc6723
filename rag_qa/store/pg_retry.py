"""Riding out a PostgreSQL restart: a lost server becomes StoreUnavailable (retry: HTTP 503), and
idempotent writes are run again until the server is back or RETRY_S have passed, so an indexing
run (one transaction per group of files) continues without losing or duplicating passages."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rag_qa.errors import StoreUnavailable

T = TypeVar("T")
RETRY_S = 30.0  # how long a write waits for a restarting server before it gives up
PROBE_TIMEOUT_S = 2  # a direct connection attempt while the server is known to be down


class ServerWatch:
    """Turns a lost server (a restart, a network cut) into StoreUnavailable, which says to retry.
    Once a loss is seen, each later call first tries one quick direct connection: while the server
    is down, requests get their 503 in milliseconds instead of each waiting out the pool's timeout;
    when it answers again, `on_back` (a fresh pool) runs once and calls go through the pool again."""

    def __init__(self, url: str, where: str, on_back: Callable[[], None]):
        self.url, self.where, self.on_back = url, where, on_back
        self.down, self.lock = False, threading.Lock()

    @contextmanager
    def reachable(self) -> Iterator[None]:
        import psycopg
        from psycopg_pool import PoolTimeout

        if self.down:
            self._probe()
        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self.down = True
            raise self._unavailable(exc) from None

    def _probe(self) -> None:
        import psycopg

        with self.lock:  # one caller probes and renews; the others then find the server back
            if not self.down:
                return
            try:
                psycopg.connect(self.url, connect_timeout=PROBE_TIMEOUT_S).close()
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc) from None
            self.on_back()
            self.down = False

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        said = " ".join(str(exc).split())[:200]
        return StoreUnavailable(f"PostgreSQL at {self.where} cannot be reached ({said}); it may be restarting: retry in a few seconds")


def retried(method: Callable[..., T]) -> Callable[..., T]:
    """An idempotent write, run again while the server is unavailable (a restart takes seconds):
    its transaction either committed or left nothing, so running it again is safe."""

    @functools.wraps(method)
    def again(self: Any, *args: Any, **kwargs: Any) -> T:
        deadline, delay = time.monotonic() + RETRY_S, 0.25
        while True:
            try:
                return method(self, *args, **kwargs)
            except StoreUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 2.0)

    return again
