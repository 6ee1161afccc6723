"""Rate limits, with the `limits` library (chosen for its tested moving-window limiter; in memory,
so each replica counts its own): requests per key, and failed key checks per client address."""

from __future__ import annotations

import math
import time

from fastapi import HTTPException

from rag_qa.errors import ConfigError


class RateLimit:
    """At most `rule` (e.g. "600/minute") hits per caller; `check` answers more with 429 and Retry-After."""

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
        wait = self.wait(caller)
        raise HTTPException(429, f"rate limit of {self.rule} reached; retry in {wait} s", headers={"Retry-After": str(wait)})

    def hit(self, caller: str) -> bool:
        """Count one for `caller`: False when that is beyond the limit."""
        return self.limiter.hit(self.item, caller)

    def blocked(self, caller: str) -> bool:
        """Whether `caller` is at the limit now (nothing is counted)."""
        return not self.limiter.test(self.item, caller)

    def wait(self, caller: str) -> int:
        """Whole seconds until `caller` is under the limit again (at least 1: what Retry-After says)."""
        return max(1, math.ceil(self.limiter.get_window_stats(self.item, caller).reset_time - time.time()))
