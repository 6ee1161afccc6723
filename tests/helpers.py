"""What tests share besides fixtures: where the shared data and models are, and small assertions.
Tests import these with `from helpers import ...` (never from conftest)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SQUAD = SHARED / "data" / "squad2"
READER = SHARED / "models" / "minilm-squad2-reader-v2"
SAMPLE_FILES = sum(p.is_file() for p in (REPO / "data").iterdir())  # the demo corpus: one file of each kind it shows


def needs_shared(path: Path) -> None:
    """Skip (with the reason) when the shared data or model is not checked out beside the repo."""
    if not path.exists():
        pytest.skip(f"{path} is not available (the ../shared folder holds test data and models)")


def approx_floats(value: Any, rel: float = 1e-4, abs_: float = 1e-6) -> Any:
    """`value` with every float wrapped in pytest.approx, recursively, so results compare with
    decisions and texts exactly and scores within a tolerance (batch shapes move float digits)."""
    if isinstance(value, float):
        return pytest.approx(value, rel=rel, abs=abs_)
    if isinstance(value, dict):
        return {k: approx_floats(v, rel, abs_) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(approx_floats(v, rel, abs_) for v in value)
    return value


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a rag-qa process started by a test: runtime "auto" as a user has it (ONNX
    Runtime where installed; the PyTorch default of the tests' own process is not passed on), with
    the session's graph cache, so a cold process starts as a user's does (graphs exported once)."""
    env = {name: value for name, value in os.environ.items() if name != "RAG_QA_RUNTIME"}
    return {**env, **extra}


def load_file(path: Path):  # noqa: ANN201 (a Document)
    """One file read as `rag-qa index` reads it (in a guarded worker)."""
    from rag_qa.config import IngestConfig
    from rag_qa.ingest.loaders import load_document
    from rag_qa.ingest.pdf import GuardedPdfReader

    with GuardedPdfReader(timeout_s=60) as guard:
        return load_document(str(path), IngestConfig(), guard)


def run_on_index_database(location: str, statement: str) -> None:
    """Run one SQL statement on an index's own database, as an older version left it: `{s}` in
    `statement` stands for the index's schema on PostgreSQL (`"name".`) and for nothing in the
    SQLite database of a folder index."""
    if location.startswith("postgresql"):
        import psycopg

        url, schema = location.split("#")
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(statement.format(s=f'"{schema}".'))
    else:
        import sqlite3

        with sqlite3.connect(Path(location) / "passages.sqlite3") as connection:
            connection.execute(statement.format(s=""))


@contextmanager
def one_note_index(tmp_path: Path, embedder: Any, reader_model: str, name: str, text: str, groups: list[str] | None = None) -> Iterator[Any]:
    """A `RagQA` over a small flat FAISS index holding one note (`kb/<name>`), with the given
    embedder and a small-window reader: what service tests ask and search against."""
    from rag_qa.config import ChunkingConfig, IndexSettings, ReaderConfig, VectorIndexConfig
    from rag_qa.pipeline import RagQA
    from rag_qa.reader import Reader
    from rag_qa.store import open_store

    settings = IndexSettings(chunking=ChunkingConfig(max_tokens=48, overlap_tokens=4), vector_index=VectorIndexConfig(index_type="flat"))
    reader = Reader(ReaderConfig(model=reader_model, max_seq_len=64, doc_stride=16, max_query_tokens=16))
    note = tmp_path / "kb" / name
    note.parent.mkdir()
    note.write_text(text)
    with RagQA(open_store(str(tmp_path / "index"), settings), embedder, reader=reader) as qa:
        qa.index([str(note)], groups=groups)
        yield qa


def with_sqlite_steps(store: Any, work: Any) -> tuple[Any, int]:
    """`work()`'s result and how many SQLite VM instructions it ran on a FAISS store's connection
    (a progress handler: work, not time, so the count is the same on a busy machine)."""
    steps: list[int] = []
    store._database.db.set_progress_handler(lambda: steps.append(1), 1)
    try:
        return work(), len(steps)
    finally:
        store._database.db.set_progress_handler(None, 1)
