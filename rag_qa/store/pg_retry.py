"""Riding out a PostgreSQL restart: a lost server becomes StoreUnavailable (retry: HTTP 503), and
idempotent writes are run again until the server is back or RETRY_S have passed, so an indexing
run (one transaction per group of files) continues without losing or duplicating passages."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rag_qa.errors import StoreUnavailable

T = TypeVar("T")
RETRY_S = 30.0  # how long a write waits for a restarting server before it gives up


@contextmanager
def reachable(where: str) -> Iterator[None]:
    """A lost server (a restart, a network cut) is StoreUnavailable, which says to retry; the pool
    checks each connection before lending it, so the retry gets a fresh one."""
    import psycopg
    from psycopg_pool import PoolTimeout

    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise StoreUnavailable(f"PostgreSQL at {where} cannot be reached ({str(exc).strip()[:200]}); it may be restarting: retry in a few seconds") from None


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
