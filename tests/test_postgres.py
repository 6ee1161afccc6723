"""The PostgreSQL + pgvector backend end to end, on a real server: the CLI, schema versioning,
clear errors, and several `rag-qa index` processes writing at once while another asks questions."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rag_qa.cli import main
from rag_qa.errors import IndexCorruptError, RagQAError
from rag_qa.indexer import index_paths
from rag_qa.store import FaissStore, PgStore, open_store
from helpers import READER, cli_env

pytestmark = pytest.mark.integration

TOPICS = ["drills", "ladders", "saws", "sanders", "clamps", "lathes", "chisels", "routers", "planes", "levels", "wrenches", "hammers"]


def write_files(folder: Path, topics: list[str]) -> list[str]:
    """One text file per topic, each long enough for several passages."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for topic in topics:
        sentences = [f"The library lends {topic} of model {n} to members for {n % 7 + 1} days, and {topic} number {n} is kept on shelf {n * 3}." for n in range(60)]
        path = folder / f"{topic}.txt"
        path.write_text(" ".join(sentences))
        paths.append(str(path))
    return paths


def test_cli_indexes_searches_and_deletes_in_postgres(postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = write_files(tmp_path / "docs", TOPICS[:2])
    assert main(["index", *files, "--store", postgres_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files_indexed"] == 2 and report["passages_total"] == report["passages_added"] > 2
    assert main(["index", *files, "--store", postgres_url, "--json"]) == 0  # unchanged files are skipped
    assert json.loads(capsys.readouterr().out)["files_unchanged"] == 2
    assert main(["search", "which shelf keeps ladders number 12", "--index", postgres_url, "--json", "--top-k", "3"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert hits[0]["source"].endswith("ladders.txt") and "ladders number 12 " in hits[0]["text"]
    assert main(["check", "--index", postgres_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["consistent"] is True
    assert main(["delete", files[0], "--index", postgres_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passages_total"] == report["passages_total"] - report["passages_added"] // 2
    assert main(["info", "--index", postgres_url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["files"] == 1 and info["index_type"] == "hnsw" and "#t_" in info["path"]


def test_schema_version_and_connection_problems_are_clear_errors(postgres_url: str) -> None:
    import psycopg

    open_store(postgres_url, dimension=4).close()
    connection_url, schema = postgres_url.split("#")
    with psycopg.connect(connection_url, autocommit=True) as db:
        db.execute(f"UPDATE {schema}.meta SET value = jsonb_set(value, '{{format_version}}', '99') WHERE key = 'manifest'")
    with pytest.raises(IndexCorruptError, match="schema version 99"):
        open_store(postgres_url)
    with pytest.raises(IndexCorruptError, match="no rag-qa index"):
        PgStore.open(connection_url + "#never_created", read_only=True)
    with pytest.raises(RagQAError, match="cannot connect to PostgreSQL at postgresql://someone:\\*\\*\\*@127.0.0.1:9/db"):
        PgStore.open("postgresql://someone:secret@127.0.0.1:9/db?connect_timeout=2")
    with pytest.raises(RagQAError, match="lower-case SQL identifier"):
        PgStore.open(connection_url + "#Robert'); DROP TABLE students;--")


ASKER = textwrap.dedent(
    """
    import json, os, sys, time
    from rag_qa.pipeline import RagQA
    url, reader, stop = sys.argv[1:4]
    asked = answered = 0
    errors = []
    with RagQA.open(url, reader=reader, read_only=True) as qa:
        while not os.path.exists(stop) or asked == 0:
            try:
                if reader != "-":
                    result = qa.ask("Which shelf keeps drills number 7?", top_k=3)
                    answered += not result.abstained
                else:
                    answered += bool(qa.search("Which shelf keeps drills number 7?", 3))
            except Exception as exc:
                errors.append(repr(exc))
            asked += 1
    print(json.dumps({"asked": asked, "answered": answered, "errors": errors}))
    """
)


def test_concurrent_indexers_and_a_reader_leave_every_passage_exactly_once(postgres_url: str, tmp_path: Path, embedder) -> None:
    """Three `rag-qa index` processes, each with its own files plus one file they all index, run
    at once while a fourth process keeps asking questions. The result must equal indexing the
    same files one by one into a FAISS store, with no error anywhere."""
    shared = write_files(tmp_path / "shared", TOPICS[:1])
    groups = [write_files(tmp_path / f"group{g}", TOPICS[1 + 3 * g : 4 + 3 * g]) for g in range(3)]
    open_store(postgres_url, dimension=embedder.dimension).close()  # the schema exists before anyone asks
    env = cli_env(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    stop = tmp_path / "stop"
    reader = str(READER) if READER.exists() else "-"
    asker = subprocess.Popen([sys.executable, "-c", ASKER, postgres_url, reader, str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    indexers = [
        subprocess.Popen(
            [sys.executable, "-m", "rag_qa.cli", "index", *shared, *group, "--store", postgres_url, "--commit-every", "8", "--json", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        for group in groups
    ]
    outcomes = [p.communicate(timeout=600) for p in indexers]
    time.sleep(1.0)
    stop.touch()
    asked_out, asked_err = asker.communicate(timeout=300)
    for process, (out, err) in zip(indexers, outcomes):
        assert process.returncode == 0, err
        assert json.loads(out)["files_skipped"] == []
    assert asker.returncode == 0, asked_err
    asked = json.loads(asked_out)
    assert asked["errors"] == [] and asked["asked"] > 0

    with FaissStore.open(tmp_path / "sequential", dimension=embedder.dimension) as expected_store:
        index_paths(shared + [p for g in groups for p in g], expected_store, embedder)
        expected = {p.id: (p.source, p.char_start, p.char_end) for p, _ in expected_store.iter_passages()}
    with open_store(postgres_url, read_only=True) as store:
        stored = [(p.id, (p.source, p.char_start, p.char_end)) for p, _ in store.iter_passages()]
        assert len(stored) == len(dict(stored)), "a passage is stored twice"
        assert dict(stored) == expected
        assert store.check() == []
        assert {f["source"] for f in store.files()} == {s for s, _, _ in expected.values()}
