"""Rate limits (requests per key, failed key checks per client address, failures written to the
audit log), counted where the service's state lives, so the configured rate holds for the service:
- PostgreSQL: in the index's schema (`store.pg_rate`), an exact moving window by the database's
  clock that every replica on the database shares: N replicas admit the rate, not N times it;
- the FAISS store: in this process's memory, with the `limits` library's moving window (chosen for
  its tested limiter). A FAISS index is a folder on one machine, served by one `rag-qa serve`
  process; several processes on one folder would each count their own.
The `limits` library parses every rule ("600/minute"). Each limit counts its keys under its own
prefix ("rate:", "failures:", "logged:"), so limits never share counts. A counter that cannot count
(the database down) raises: the request gets 503, and is never admitted uncounted."""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import HTTPException

from rag_qa.errors import ConfigError
from rag_qa.store.pg_rate import PgRates


class RateLimit:
    """At most `rule` (e.g. "600/minute") hits per caller; `check` answers more with 429 and Retry-After.
    Counted in `store` where it is shared (PostgreSQL), else in this process."""

    def __init__(self, rule: str, store: Any = None, prefix: str = ""):
        from limits import parse

        try:
            item = parse(rule)
        except ValueError as exc:
            raise ConfigError(f"rate limit {rule!r}: {exc}; write it like 600/minute or 10/second") from None
        self.rule, self.prefix = rule, prefix
        self.counter = StoreCounter(store, item.amount, item.get_expiry()) if isinstance(store, PgRates) else MemoryCounter(item)

    def check(self, caller: str) -> None:
        if self.hit(caller):
            return
        wait = self.wait(caller)
        raise HTTPException(429, f"rate limit of {self.rule} reached; retry in {wait} s", headers={"Retry-After": str(wait)})

    def hit(self, caller: str) -> bool:
        """Count one for `caller`: False when that is beyond the limit."""
        return self.counter.hit(self.prefix + caller)

    def blocked(self, caller: str) -> bool:
        """Whether `caller` is at the limit now (nothing is counted)."""
        return not self.counter.test(self.prefix + caller)

    def wait(self, caller: str) -> int:
        """Whole seconds until `caller` is under the limit again (at least 1: what Retry-After says)."""
        return max(1, math.ceil(self.counter.reset_in(self.prefix + caller)))


class MemoryCounter:
    """Hits counted in this process: the `limits` library's moving window in memory."""

    def __init__(self, item: Any):
        from limits import storage, strategies

        self.item = item
        self.limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def hit(self, key: str) -> bool:
        return self.limiter.hit(self.item, key)

    def test(self, key: str) -> bool:
        return self.limiter.test(self.item, key)

    def reset_in(self, key: str) -> float:
        return self.limiter.get_window_stats(self.item, key).reset_time - time.time()


class StoreCounter:
    """Hits counted in the store, which every process on it shares (`PgRates`)."""

    def __init__(self, store: Any, amount: int, window_s: float):
        self.store, self.amount, self.window_s = store, amount, window_s

    def hit(self, key: str) -> bool:
        return self.store.rate_hit(key, self.amount, self.window_s)

    def test(self, key: str) -> bool:
        return self.store.rate_test(key, self.amount, self.window_s)

    def reset_in(self, key: str) -> float:
        return self.store.rate_reset_in(key, self.window_s)
