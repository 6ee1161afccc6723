"""Per-key rate limits, with the `limits` library (chosen for its tested moving-window limiter;
in memory, so each replica counts its own requests)."""

from __future__ import annotations

import math
import time

from fastapi import HTTPException

from rag_qa.errors import ConfigError


class RateLimit:
    """At most `rule` (e.g. "600/minute") requests per caller; more get 429 with Retry-After."""

    def __init__(self, rule: str):
        from limits import parse, storage, strategies

        try:
            self.item = parse(rule)
        except ValueError as exc:
            raise ConfigError(f"rate limit {rule!r}: {exc}; write it like 600/minute or 10/second") from None
        self.rule = rule
        self.limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def check(self, caller: str) -> None:
        if self.limiter.hit(self.item, caller):
            return
        wait = max(1, math.ceil(self.limiter.get_window_stats(self.item, caller).reset_time - time.time()))
        raise HTTPException(429, f"rate limit of {self.rule} reached; retry in {wait} s", headers={"Retry-After": str(wait)})
