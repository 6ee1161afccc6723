"""Rate-limit counters that every replica on one PostgreSQL database shares: a mixin of `PgStore`.

An exact moving window: each admitted hit is a row of `{schema}.rate_hits`, stamped with the
database's clock, so replicas whose clocks disagree still count one window. A hit takes turns with
the other hits on its key (a transaction advisory lock on the key, in a lock space that source and
audit locks never use), forgets the key's hits older than the window, counts the rest and adds
itself only below the limit, all in one transaction: N replicas together admit the limit, never
more. The table is made on first use. Rows of keys that never come back (a flood of failed key
checks from forged addresses) are swept now and then, so the table stays as small as the traffic.
No retries here: a request waits for its limit, so a lost server is a 503 at once (`ServerWatch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

NOW = "extract(epoch from clock_timestamp())::float8"  # the database's clock, in seconds
SWEEP_EVERY_S = 60.0  # how often a process removes expired rows of every key
SWEEP_ROWS = 10_000  # at most this many per sweep (the rest go at the next one)
TABLE = """
CREATE TABLE IF NOT EXISTS {s}.rate_hits (key text NOT NULL, at double precision NOT NULL, expires double precision NOT NULL);
CREATE INDEX IF NOT EXISTS rate_hits_by_key ON {s}.rate_hits (key, at);
CREATE INDEX IF NOT EXISTS rate_hits_by_expiry ON {s}.rate_hits (expires);
"""


class PgRates:
    """`rate_hit`, `rate_test`, `rate_reset_in` and `rate_sweep`, for `PgStore`."""

    schema: str  # PgStore's, as are these three
    _sql: Callable[[str], Any]
    _connection: Callable[[], AbstractContextManager[Any]]
    _transaction: Callable[[], AbstractContextManager[Any]]
    _rates_ready = False  # the table is known to exist
    _next_sweep = 0.0  # time.monotonic() of this process's next sweep

    def rate_hit(self, key: str, amount: int, window_s: float) -> bool:
        """Count one hit for `key`, unless `amount` hits were counted for it in the last `window_s`
        seconds, by any replica: then False, and nothing is counted."""
        self._rate_table()
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"rag_qa:rate:{self.schema}:{key}",))
            now = db.execute(f"SELECT {NOW}").fetchone()[0]
            db.execute(self._sql("DELETE FROM {s}.rate_hits WHERE key = %s AND at <= %s"), (key, now - window_s))
            counted = db.execute(self._sql("SELECT count(*) FROM {s}.rate_hits WHERE key = %s"), (key,)).fetchone()[0]
            admitted = counted < amount
            if admitted:
                insert = "INSERT INTO {s}.rate_hits (key, at, expires) VALUES (%s, %s, %s)"
                db.execute(self._sql(insert), (key, now, now + window_s))
        self._sweep_now_and_then()
        return admitted

    def rate_test(self, key: str, amount: int, window_s: float) -> bool:
        """Whether a hit for `key` would be admitted now (nothing is counted)."""
        query = "SELECT count(*) FROM {s}.rate_hits WHERE key = %s AND at > " + NOW + " - %s"
        return self._rate_value(query, (key, window_s)) < amount

    def rate_reset_in(self, key: str, window_s: float) -> float:
        """Seconds until the oldest hit for `key` in the window leaves it (0 with none), by the
        database's clock: when a key at its limit is admitted again, whichever replica it asks."""
        oldest = "(SELECT min(at) FROM {s}.rate_hits WHERE key = %s AND at > clock.t - %s)"
        query = "SELECT coalesce(" + oldest + " + %s - clock.t, 0) FROM (SELECT " + NOW + " AS t) clock"
        return float(self._rate_value(query, (key, window_s, window_s)))

    def rate_sweep(self) -> int:
        """Remove expired hits of every key (at most SWEEP_ROWS); rows a hit holds are skipped, so a
        sweep never waits for a hit. Returns how many were removed."""
        self._rate_table()
        query = "DELETE FROM {s}.rate_hits WHERE ctid = ANY(ARRAY(SELECT ctid FROM {s}.rate_hits WHERE expires <= " + NOW + " LIMIT %s FOR UPDATE SKIP LOCKED))"
        with self._transaction() as db:
            return int(db.execute(self._sql(query), (SWEEP_ROWS,)).rowcount)

    def _sweep_now_and_then(self) -> None:
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_EVERY_S
            self.rate_sweep()

    def _rate_value(self, query: str, params: tuple[Any, ...]) -> Any:
        self._rate_table()
        with self._connection() as db:
            return db.execute(self._sql(query), params).fetchone()[0]

    def _rate_table(self) -> None:
        """Make the table once (indexes made before it lack it), taking turns with schema creation."""
        if self._rates_ready:
            return
        with self._connection() as db:
            exists = db.execute("SELECT to_regclass(%s)", (f"{self.schema}.rate_hits",)).fetchone()[0] is not None
        if not exists:
            with self._transaction() as db:
                db.execute("SELECT pg_advisory_xact_lock(hashtext('rag_qa:create'))")
                db.execute(self._sql(TABLE))
        self._rates_ready = True
