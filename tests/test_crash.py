"""SIGKILL a real `rag-qa index` process at random moments, many times. After every kill the index
must open, agree with itself (FAISS = SQLite = full-text), and hold only whole files; re-running
the same command must complete it with no duplicates and nothing lost."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, SQUAD, cli_env, needs_shared
from squad_pdfs import build_corpus

from rag_qa.config import ChunkingConfig, IngestConfig
from rag_qa.ingest.chunking import chunk_document
from rag_qa.ingest.loaders import discover, load_document
from rag_qa.ingest.pdf import GuardedPdfReader
from rag_qa.models import bundled_minilm
from rag_qa.store import FaissStore

pytestmark = pytest.mark.integration
KILLS = 3  # each cycle waits up to a full indexing run: CI time (24 kills took over 15 minutes on a slow 2-core host; 5 took 135 s)


def index_command(corpus: Path, index: Path) -> list[str]:
    # Small commit groups and frequent FAISS saves put many commit and save points in each run.
    return [sys.executable, "-m", "rag_qa.cli", "index", str(corpus), "--index", str(index),
            "--json", "--quiet", "--commit-every", "12", "--save-every", "1"]  # fmt: skip


def expected_passages(corpus: Path) -> dict[str, set[str]]:
    """Passage ids per file, computed in-process exactly as the indexer chunks them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm())
    files, _ = discover([str(corpus)], IngestConfig())
    with GuardedPdfReader() as reader:
        return {
            f: {p.id for p in chunk_document(load_document(f, IngestConfig(), reader), tokenizer, ChunkingConfig())}
            for f in files
        }


def assert_consistent(index: Path, expected: dict[str, set[str]]) -> int:
    """The index opens, every stored file is complete, and FAISS agrees with SQLite."""
    with FaissStore.open(index, read_only=True) as reader:
        stored: dict[str, set[str]] = {}
        for passage, vector in reader.iter_passages():
            assert vector is not None
            stored.setdefault(passage.source, set()).add(passage.id)
        for source, ids in stored.items():
            assert ids == expected[source], f"{source} is partially indexed"
        assert {f["source"] for f in reader.files()} == set(stored)
        # searching through FAISS (the file, or rebuilt from SQLite) only ever yields stored passages
        hits = reader.search(next(reader.iter_passages())[1], top_k=1000) if stored else []
        assert len(hits) == sum(len(ids) for ids in stored.values())
    with FaissStore.open(index) as writer:  # what any writer does on open: repair a stale FAISS file
        writer.flush()
        assert writer.check() == []
    return len(stored)


def timed_run(command: list[str]) -> float:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=cli_env())
    assert result.returncode == 0, result.stderr[-2000:]
    return time.monotonic() - started


def test_random_sigkills_never_corrupt_the_index(tmp_path):
    needs_shared(SQUAD / "dev-eval.json")
    corpus = tmp_path / "corpus"
    (tmp_path / "empty").mkdir()
    build_corpus(SQUAD / "dev-eval.json", corpus / "squad", limit=2)  # two long PDFs: many commit points, CI time to spare
    shutil.copytree(REPO / "data", corpus / "samples")
    expected = expected_passages(corpus)
    index = tmp_path / "index"
    rng = random.Random(1234)

    timed_run(index_command(tmp_path / "empty", tmp_path / "warm-up"))  # a cold cache builds the model's graph: not start-up time
    startup_s = timed_run(index_command(tmp_path / "empty", tmp_path / "timing-empty"))
    full_run_s = timed_run(index_command(corpus, tmp_path / "timing"))

    kills = completed_before_kill = 0
    while kills < KILLS:
        assert completed_before_kill < 30, f"runs keep finishing before the kill (start-up {startup_s:.1f} s, full run {full_run_s:.1f} s)"
        process = subprocess.Popen(index_command(corpus, index), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())
        time.sleep(rng.uniform(0.8 * startup_s, full_run_s))  # mostly while it writes
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        else:
            completed_before_kill += 1
        process.wait()
        files_done = assert_consistent(index, expected)
        if files_done == len(expected):  # give the next run work to do: forget most files
            with FaissStore.open(index) as store:
                for source in rng.sample(sorted(expected), k=len(expected) - 1):
                    store.delete_source(source)

    final = subprocess.run(index_command(corpus, index), capture_output=True, text=True, timeout=600, env=cli_env())
    assert final.returncode == 0, final.stderr[-2000:]
    assert assert_consistent(index, expected) == len(expected)
    with FaissStore.open(index, read_only=True) as store:
        assert store.count() == sum(len(ids) for ids in expected.values())  # no duplicates, nothing lost
    print(f"{kills} kills, {completed_before_kill} runs finished first; start-up {startup_s:.1f} s, full run {full_run_s:.1f} s")
