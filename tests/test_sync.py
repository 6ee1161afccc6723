"""`rag-qa index --prune` keeps an index in step with its folders, on FAISS and PostgreSQL: random
folder histories (create, edit, rename, move, delete, touch, interleaved with syncs and with syncs
interrupted between transactions) end, after a final sync, with exactly the files on disk, each once, with its current text and offsets; `check`
is clean; a file whose content did not change is never embedded again. And a sync killed at random
moments leaves a consistent index that the same command completes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import cli_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_qa.config import ChunkingConfig, IndexSettings, IngestConfig, VectorIndexConfig
from rag_qa.indexer import index_paths
from rag_qa.store import open_store

WORDS = "ladder drill battery loan moon river seven minutes safety budget shed nine".split()
PLACES = ["a/one.txt", "a/two.txt", "b/one.txt", "a/c/deep.md", "b/three.md", "top.txt"]
SETTINGS = IndexSettings(chunking=ChunkingConfig(max_tokens=24, overlap_tokens=4), vector_index=VectorIndexConfig(index_type="flat"))


class Interrupted(BaseException):
    """Stands for a kill between two of a sync's transactions (a kill inside one rolls it back)."""


class InterruptingStore:
    """The real store, interrupted before its `budget`-th write (a rename, removal or group of files)."""

    def __init__(self, store, budget: int):
        self.inner, self.budget = store, budget

    def __getattr__(self, name):
        attribute = getattr(self.inner, name)
        if name not in ("replace_files", "rename_source", "delete_source", "set_groups"):
            return attribute

        def write(*args, **kwargs):
            if self.budget == 0:
                raise Interrupted()
            self.budget -= 1
            return attribute(*args, **kwargs)

        return write


class CountingEmbedder:
    """The real embedder, recording every text it is asked to embed."""

    def __init__(self, embedder):
        self.inner, self.embedded = embedder, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, texts, *args, **kwargs):
        self.embedded += list(texts)
        return self.inner.embed(texts, *args, **kwargs)


def on_disk(root: Path) -> dict[str, str]:
    return {str(p.resolve()): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_mirrors(store, root: Path) -> None:
    """The index holds exactly the files under `root`, each once, at its current content and offsets."""
    files = on_disk(root)
    assert {f["source"]: f["content_hash"] for f in store.files()} == {s: hashlib.sha256(t.encode()).hexdigest() for s, t in files.items()}
    store.flush()
    assert store.check() == []
    seen = {}
    for passage, vector in store.iter_passages():
        assert vector is not None and files[passage.source][passage.char_start : passage.char_end] == passage.text
        seen[passage.id] = passage.source
    assert set(seen.values()) == set(files)  # every file has passages, and no passage is orphaned


def scratch(backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "faiss":
        return str(request.getfixturevalue("tmp_path") / f"ix-{uuid.uuid4().hex[:8]}")
    return f"{request.getfixturevalue('postgres_server')}#s_{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_a_synced_index_mirrors_any_folder_history_and_embeds_only_new_content(backend, request, embedder, tmp_path) -> None:
    texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=30).map(lambda words: " ".join(words) + ".")
    counting = CountingEmbedder(embedder)

    @settings(max_examples=15 if backend == "faiss" else 8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data) -> None:
        root = tmp_path / f"kb-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        store = open_store(scratch(backend, request), SETTINGS)
        indexed: dict[str, str] = {}  # path -> text, as of the last sync
        try:
            for _ in range(data.draw(st.integers(1, 12), label="steps")):
                present = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
                actions = ["create", "edit", "move", "delete", "touch", "sync", "interrupted sync"] if present else ["create", "sync"]
                action = data.draw(st.sampled_from(actions))
                if action == "create" or action == "edit":
                    place = data.draw(st.sampled_from(PLACES if action == "create" else present))
                    (root / place).parent.mkdir(parents=True, exist_ok=True)
                    (root / place).write_text(data.draw(texts))
                elif action == "move":
                    source, target = data.draw(st.sampled_from(present)), data.draw(st.sampled_from(PLACES))
                    (root / target).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(root / source, root / target)
                elif action == "delete":
                    (root / data.draw(st.sampled_from(present))).unlink()
                elif action == "touch":
                    os.utime(root / data.draw(st.sampled_from(present)))
                elif action == "interrupted sync":  # what it committed stays; the next sync finishes the job
                    try:
                        index_paths([str(root)], InterruptingStore(store, data.draw(st.integers(0, 3))), counting, prune=True, config=IngestConfig(commit_passages=2))
                    except Interrupted:
                        pass
                else:
                    indexed = sync(store, root, counting, indexed)
            sync(store, root, counting, indexed)
            assert_mirrors(store, root)
        finally:
            store.close()

    check()


def sync(store, root: Path, counting: CountingEmbedder, before: dict[str, str]) -> dict[str, str]:
    """One `--prune` run; only content the index did not hold may be embedded."""
    counting.embedded = []
    report = index_paths([str(root)], store, counting, prune=True)
    now = on_disk(root)
    new_content = [text for path, text in now.items() if before.get(path) != text and text not in {t for p, t in before.items() if p not in now}]
    assert all(any(piece in text for text in new_content) for piece in counting.embedded)  # nothing unchanged embedded again
    assert {m["to"] for m in report.moved} <= set(now) and set(report.removed).isdisjoint(now)
    return now


def rag_qa(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rag_qa.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_a_sync_killed_at_any_moment_is_finished_by_running_it_again(backend, request, tmp_path) -> None:
    rng = random.Random(7)
    root = tmp_path / "kb"
    for i in range(40):
        (root / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 4}" / f"f{i}.txt").write_text(" ".join(rng.choices(WORDS, k=60)) + f" file {i}.")
    index = str(tmp_path / "index") if backend == "faiss" else request.getfixturevalue("postgres_url")
    first = rag_qa("index", str(root), "--index", index, "--quiet")
    assert first.wait(300) == 0, first.stderr.read()
    for i in range(0, 40, 3):
        os.replace(root / f"d{i % 4}" / f"f{i}.txt", root / f"d{(i + 1) % 4}" / f"moved{i}.txt")  # 14 moves
    for i in range(1, 40, 5):
        (root / f"d{i % 4}" / f"f{i}.txt").unlink(missing_ok=True)  # deletions
    for i in range(40, 60):
        (root / f"d{i % 4}" / f"f{i}.txt").write_text(" ".join(rng.choices(WORDS, k=60)) + f" new file {i}.")
    for delay in (0.5, 2.0, 3.5):  # while starting, while moving and removing, while embedding
        run = rag_qa("index", str(root), "--index", index, "--prune", "--quiet", "--commit-every", "8")
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait(60)
    final = rag_qa("index", str(root), "--index", index, "--prune", "--json", "--quiet")
    assert final.wait(300) == 0, final.stderr.read()
    json.loads(final.stdout.read())
    with open_store(index) as store:
        assert_mirrors(store, root)


def wait_for(condition, timeout_s: float = 60.0) -> float:
    """Seconds until `condition()` held (polling); fails after `timeout_s`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, "the watched change did not reach the index in time"
        time.sleep(0.25)
    return time.monotonic() - started


@pytest.mark.integration
def test_a_served_index_follows_its_watched_folder_while_answering(tmp_path, tiny_bert) -> None:
    import httpx
    from service_process import start_service, stop

    root = tmp_path / "kb"
    root.mkdir()
    (root / "pump.txt").write_text("The bike pump hangs in the red cabinet.")
    index = str(tmp_path / "index")
    process, url = start_service(index, tiny_bert, "--watch", str(root), "--upload-dir", str(tmp_path / "uploads"))

    def sources(query: str) -> set[str]:
        results = httpx.post(f"{url}/search", json={"query": query, "top_k": 3, "retrieval": "bm25"}, timeout=30).json()["results"]
        return {Path(r["source"]).name for r in results}

    def documents() -> dict[str, str]:
        return {Path(d["source"]).name: d["content_hash"] for d in httpx.get(f"{url}/documents", timeout=30).json()["documents"]}

    try:
        waits = [wait_for(lambda: sources("pump cabinet") == {"pump.txt"})]  # the first sync, at start
        (root / "kayak.md").write_text("Kayak paddles are stored behind the shed.")
        waits.append(wait_for(lambda: "kayak.md" in sources("kayak paddles")))
        (root / "kayak.md").write_text("Kayak paddles moved to the boathouse loft.")
        waits.append(wait_for(lambda: "kayak.md" in sources("boathouse loft")))
        os.replace(root / "pump.txt", root / "pump-room.txt")
        waits.append(wait_for(lambda: sources("pump cabinet") == {"pump-room.txt"}))
        (root / "kayak.md").unlink()
        waits.append(wait_for(lambda: "kayak.md" not in documents()))
        with open(root / "slow.txt", "w") as slow:  # written over 2 s: never read half-way
            for i in range(20):
                slow.write(f"Sentence {i} of the slow notes about the ferry timetable. ")
                slow.flush()
                time.sleep(0.1)
        final = hashlib.sha256((root / "slow.txt").read_bytes()).hexdigest()
        waits.append(wait_for(lambda: documents().get("slow.txt") == final))
        assert httpx.post(f"{url}/ask", json={"question": "Where is the pump?"}, timeout=60).status_code == 200  # answering throughout
        assert max(waits) < 30
    finally:
        log = stop(process)
    synced = [json.loads(line.split("synced watched folders: ", 1)[1]) for line in log.splitlines() if "synced watched folders: " in line]
    assert sum(1 for s in synced for p in s.get("added", []) + s.get("changed", []) if p.endswith("slow.txt")) == 1  # read once, whole
    assert any(m["to"].endswith("pump-room.txt") for s in synced for m in s.get("moved", []))  # re-pointed, not re-read


@pytest.mark.integration
def test_a_burst_of_a_thousand_changes_is_one_sync(tmp_path) -> None:
    import threading

    from rag_qa.pipeline import RagQA

    root = tmp_path / "kb"
    root.mkdir()
    reports, stop = [], threading.Event()
    with RagQA.open(tmp_path / "index", SETTINGS) as qa:
        watcher = threading.Thread(target=qa.watch, args=([str(root)], reports.append, stop))
        watcher.start()
        wait_for(lambda: len(reports) == 1)  # the first sync: nothing yet
        for i in range(1000):
            (root / f"note{i:04}.txt").write_text(f"Note {i}: the {WORDS[i % len(WORDS)]} is on shelf {i}.")
        wait_for(lambda: sum(len(r.added) for r in reports) == 1000, timeout_s=240)
        stop.set()
        watcher.join(60)
    assert [len(r.added) for r in reports] == [0, 1000]
