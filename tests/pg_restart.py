"""Stopping and restarting a real pgserver PostgreSQL mid-run, for the fault tests and
benchmarks/faults.py (as the server's own user; a fast shutdown cuts every connection)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def restart(server, down_s: float = 0.0) -> None:
    """Restart the server, staying down `down_s` seconds in between; return once it accepts connections."""
    import pgserver

    if down_s <= 0:
        pgserver.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)
        _wait_for(server)
        return
    with stopped(server):
        time.sleep(down_s)


@contextmanager
def stopped(server) -> Iterator[None]:
    """The server is down inside the block, and started again (with its own options) after it."""
    import pgserver

    started_with = shlex.split(Path(server.pgdata, "postmaster.opts").read_text())[3:]  # binary, -D, folder: pg_ctl adds them
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    try:
        yield
    finally:
        pgserver.pg_ctl(["-w", "-o", shlex.join(started_with), "start"], pgdata=server.pgdata, user=server.system_user)
        _wait_for(server)


def _wait_for(server) -> None:
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(server.get_uri()).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not come back within 60 s") from None
            time.sleep(0.2)


def shut_down(server) -> None:
    """Stop the server for good, then let pgserver clean up. pgserver's own cleanup stops only the
    postmaster it started: after a restart through pg_ctl the running one is another, which it
    left behind (two servers outlived every suite run)."""
    import pgserver

    try:
        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    except Exception:  # noqa: BLE001 (already stopped: nothing to do)
        pass
    server.cleanup()
    assert not Path(server.pgdata, "postmaster.pid").exists(), f"a PostgreSQL server still runs on {server.pgdata}"
