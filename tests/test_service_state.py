"""The team service as a state machine, on the FAISS folder store and on PostgreSQL: random
sequences of keys created and revoked, uploads with groups, group changes, deletes, syncs of a
watched folder (moves, prunes, a vanished folder) and requests by every key, revoked keys and no
key; after every step no caller has learnt or changed what its key may not (the invariants are in
tests/service_checks.py, the machine in tests/service_machine.py). A CI-sized run; the long one is
benchmarks/service_state.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from service_machine import machine_for, open_world

pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")
CI_RUN = settings(max_examples=15, stateful_step_count=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def tiny_reader(tiny_bert: str):
    from rag_qa.config import ReaderConfig
    from rag_qa.reader import Reader

    return Reader(ReaderConfig(model=tiny_bert, max_seq_len=64, doc_stride=16, max_query_tokens=16))


@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_no_caller_learns_or_changes_what_its_key_may_not(backend: str, request: pytest.FixtureRequest, tmp_path: Path, embedder, tiny_reader) -> None:
    server = request.getfixturevalue("postgres_server") if backend == "postgresql" else None

    def world():
        location = f"{server}#state_{uuid.uuid4().hex[:12]}" if server else "index"
        return open_world(location, embedder, tiny_reader, scratch=str(tmp_path))

    run_state_machine_as_test(machine_for(world), settings=CI_RUN)
