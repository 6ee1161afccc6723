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
import shutil
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
from rag_qa.pipeline import RagQA
from rag_qa.store import open_store

WORDS = "ladder drill battery loan moon river seven minutes safety budget shed nine".split()
PLACES = ["a/one.txt", "a/two.txt", "b/one.txt", "a/c/deep.md", "b/three.md", "top.txt"]
KEPT = "kept.txt"  # in every random folder, never moved or deleted
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
        (root / KEPT).write_text("The kept file is never moved or deleted.")  # a root without files is never pruned
        store = open_store(scratch(backend, request), SETTINGS)
        indexed: dict[str, str] = {}  # path -> text, as of the last sync
        try:
            for _ in range(data.draw(st.integers(1, 12), label="steps")):
                present = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != KEPT)
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
                        index_paths([str(root)], InterruptingStore(store, data.draw(st.integers(0, 3))), counting, prune=True, config=IngestConfig(commit_passages=2), force=True)
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
    """One `--prune --force` run (random histories delete most files at times); only content the
    index did not hold may be embedded."""
    counting.embedded = []
    report = index_paths([str(root)], store, counting, prune=True, force=True)
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


# ---------------------------------------------------------------- what a sync refuses to prune (issue 34, item 2)


def write_files(root: Path, texts: dict[str, str]) -> None:
    for name, text in texts.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def stored(store) -> dict[str, list[str]]:
    """Indexed name -> its access groups."""
    return {f["source"]: list(f["groups"]) for f in store.files()}


def refusals(report) -> list[tuple[str, str, int]]:
    return [(r["path"], r["why"], r["files"]) for r in report.prune_refused]


HR_FILES = {"sal.txt": "Salaries rise by ZEBRA-7731 in spring for the support team.", "leave.md": "Parental leave lasts twenty weeks."}


@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_a_vanished_or_empty_root_is_never_pruned_and_its_files_keep_their_groups(backend, request, embedder, tmp_path) -> None:
    hr = tmp_path / "kb" / "hr"
    write_files(hr, HR_FILES)
    store = open_store(scratch(backend, request), SETTINGS)
    try:
        index_paths([str(hr)], store, embedder, groups=("hr",))
        held = stored(store)
        assert len(held) == 2 and all(groups == ["hr"] for groups in held.values())

        os.replace(hr, tmp_path / "away")  # moved away (an unmounted share looks the same)
        report = index_paths([str(hr)], store, embedder, prune=True)
        assert report.removed == [] and stored(store) == held
        assert refusals(report) == [(str(hr.resolve()), "missing", 2)]

        hr.mkdir()  # an empty mount point; a file of a type no loader reads is not a document either
        (hr / "notes.rtf").write_text("not a type rag-qa reads")
        report = index_paths([str(hr)], store, embedder, prune=True, force=True)  # not even with force
        assert report.removed == [] and stored(store) == held
        assert refusals(report) == [(str(hr.resolve()), "empty", 2)]
        assert "no file to index" in report.prune_refused[0]["reason"]

        shutil.rmtree(hr)
        os.replace(tmp_path / "away", hr)  # back: indexed again without --groups, still hr only
        report = index_paths([str(hr)], store, embedder, prune=True)
        assert report.files_unchanged == 2 and stored(store) == held and report.prune_refused == []
    finally:
        store.close()


def test_a_folder_the_walk_cannot_read_is_reported_and_nothing_under_it_is_pruned(embedder, tmp_path, monkeypatch) -> None:
    kb = tmp_path / "kb"
    write_files(kb, {"a.txt": "Ladders hang in the shed.", "b.txt": "Drills charge overnight.", "c.txt": "The moon rises late.",
                     "locked/d.txt": "Budget meeting on nine.", "locked/deeper/e.txt": "River safety rules."})  # fmt: skip
    store = open_store(str(tmp_path / "index"), SETTINGS)
    try:
        index_paths([str(kb)], store, embedder)
        held = stored(store)
        # Tests run as root, where `chmod 000` does not stop reading: the folder is made unreadable in
        # this process instead, by failing os.scandir on it as the operating system fails an opendir
        # without read permission (os.walk calls os.scandir for each folder and skips it on an error).
        locked, real_scandir = str((kb / "locked").resolve()), os.scandir

        def scandir(path="."):
            if isinstance(path, (str, os.PathLike)) and str(Path(path).resolve()) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
        report = index_paths([str(kb)], store, embedder, prune=True)  # 2 of 5 would be under the share
        assert report.removed == [] and stored(store) == held
        assert {"path": locked, "reason": "cannot read folder (Permission denied)"} in [{k: s[k] for k in ("path", "reason")} for s in report.files_skipped]
        assert refusals(report) == [(locked, "unreadable", 2)]
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_files_kept_in_an_index_folder_inside_a_synced_folder_are_never_pruned(backend, request, embedder, tmp_path) -> None:
    kb = tmp_path / "kb"
    write_files(kb, {"a.txt": "Ladders hang in the shed.", "b.txt": "Drills charge overnight.", "c.txt": "The moon rises late."})
    # the index's own folder inside the synced folder (FAISS), or another rag-qa index there; either holds uploads
    where = str(kb / "index") if backend == "faiss" else scratch(backend, request)
    other = kb / "index" if backend == "faiss" else kb / "other-index"
    store = open_store(where, SETTINGS)
    if backend != "faiss":
        open_store(str(other), SETTINGS).close()
    upload = other / "uploads" / "contract.txt"
    write_files(upload.parent, {upload.name: "The lease ends in September."})
    try:
        index_paths([str(kb), str(upload)], store, embedder)
        held = stored(store)
        assert str(upload.resolve()) in held and len(held) == 4
        report = index_paths([str(kb)], store, embedder, prune=True)  # the walk does not enter index folders
        assert report.removed == [] and stored(store) == held
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_a_sync_that_would_remove_more_than_the_share_of_a_root_removes_nothing_there(backend, request, embedder, tmp_path) -> None:
    x, y = tmp_path / "kb" / "x", tmp_path / "kb" / "y"
    write_files(x, {"a.txt": "Ladders hang in the shed.", "b.txt": "Drills charge overnight.", "c.txt": "The moon rises late.",
                    "g.txt": "Nine safety minutes.", "h.txt": "The battery shed."})  # fmt: skip
    write_files(y, {"d.txt": "Budget meeting on nine.", "e.txt": "River safety rules.", "f.txt": "Seven minutes to the loan office."})
    store = open_store(scratch(backend, request), SETTINGS)
    name = lambda path: str(path.resolve())  # noqa: E731
    try:
        index_paths([str(x), str(y)], store, embedder)
        (x / "sub").mkdir()
        os.replace(x / "a.txt", x / "sub" / "a.txt")  # moves are not removals: x loses one file of five
        os.replace(x / "b.txt", x / "sub" / "b.txt")
        (x / "c.txt").unlink()
        (y / "d.txt").unlink()  # y loses two of three
        (y / "e.txt").unlink()
        report = index_paths([str(x), str(y)], store, embedder, prune=True)
        assert len(report.moved) == 2 and report.removed == [name(x / "c.txt")]
        assert refusals(report) == [(name(y), "share", 2)]
        assert "2 of the 3" in report.prune_refused[0]["reason"] and "--force" in report.prune_refused[0]["reason"]
        assert {name(y / "d.txt"), name(y / "e.txt")} <= set(stored(store))

        report = index_paths([str(x), str(y)], store, embedder, IngestConfig(max_prune_share=0.6), prune=True)
        assert report.removed == [] and refusals(report) == [(name(y), "share", 2)]  # 2/3 is still more than 60%
        report = index_paths([str(x), str(y)], store, embedder, IngestConfig(max_prune_share=0.7), prune=True)
        assert report.removed == [name(y / "d.txt"), name(y / "e.txt")] and report.prune_refused == []

        (x / "sub" / "a.txt").unlink()  # x: three of four
        (x / "sub" / "b.txt").unlink()
        (x / "g.txt").unlink()
        report = index_paths([str(x)], store, embedder, prune=True)
        assert report.removed == [] and refusals(report) == [(name(x), "share", 3)]
        report = index_paths([str(x)], store, embedder, prune=True, force=True)
        assert report.removed == [name(x / "g.txt"), name(x / "sub" / "a.txt"), name(x / "sub" / "b.txt")]
        assert set(stored(store)) == {name(x / "h.txt"), name(y / "f.txt")}
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_a_pruned_document_that_comes_back_gets_its_groups_back(backend, request, embedder, tmp_path) -> None:
    def tombstone_name(source: str) -> str:  # where a sync keeps a removed document's groups
        return "tombstone/" + hashlib.sha256(source.encode("utf-8")).hexdigest()

    kb = tmp_path / "kb"
    write_files(kb, {"a.txt": "Ladders hang in the shed.", "b.txt": "Drills charge overnight.", "hr/sal.txt": HR_FILES["sal.txt"]})
    sal = kb / "hr" / "sal.txt"
    store = open_store(scratch(backend, request), SETTINGS)
    try:
        index_paths([str(kb)], store, embedder)
        index_paths([str(kb / "hr")], store, embedder, groups=("hr",))
        assert stored(store)[str(sal.resolve())] == ["hr"]

        sal.unlink()  # one of three: a sync removes it, and keeps its groups by name
        assert index_paths([str(kb)], store, embedder, prune=True).removed == [str(sal.resolve())]
        sal.write_text(HR_FILES["sal.txt"] + " Revised.")  # it comes back, indexed without --groups
        report = index_paths([str(kb)], store, embedder, prune=True)
        assert report.added == [str(sal.resolve())] and stored(store)[str(sal.resolve())] == ["hr"]  # not public
        assert report.groups_restored == [{"source": str(sal.resolve()), "groups": ["hr"]}]
        assert not (store.read_metadata(tombstone_name(str(sal.resolve()))) or {}).get("groups")  # cleared

        sal.unlink()
        index_paths([str(kb)], store, embedder, prune=True)
        kept = store.read_metadata(tombstone_name(str(sal.resolve())))
        assert kept["groups"] == ["hr"] and kept["keep_until"] > kept["removed_at"]
        sal.write_text(HR_FILES["sal.txt"])  # explicit groups on the run win over the kept ones
        index_paths([str(kb / "hr")], store, embedder, groups=("legal",))
        assert stored(store)[str(sal.resolve())] == ["legal"]

        sal.unlink()
        index_paths([str(kb)], store, embedder, prune=True)
        kept = store.read_metadata(tombstone_name(str(sal.resolve())))
        assert kept["groups"] == ["legal"]
        store.write_metadata(tombstone_name(str(sal.resolve())), {**kept, "keep_until": kept["removed_at"] - 1})  # expired
        sal.write_text(HR_FILES["sal.txt"])
        report = index_paths([str(kb)], store, embedder, prune=True)
        assert stored(store)[str(sal.resolve())] == [] and report.groups_restored == []  # an expired tombstone is ignored
    finally:
        store.close()


def test_a_refused_prune_is_logged_by_a_watching_service(capsys) -> None:
    from rag_qa.cli.serving import log_sync
    from rag_qa.indexer import IndexReport

    reason = "a sync would remove 2 of the 3 indexed files under /kb/y; nothing under it was removed"
    log_sync(IndexReport(prune_refused=[{"path": "/kb/y", "why": "share", "files": 2, "reason": reason}]))
    assert reason in capsys.readouterr().err


@pytest.mark.integration
def test_a_watch_reports_a_refused_prune_and_keeps_running(tmp_path) -> None:
    import threading

    from rag_qa.pipeline import RagQA

    root = tmp_path / "kb"
    write_files(root, {"a.txt": "Ladders hang in the shed.", "b.txt": "Drills charge overnight.", "c.txt": "The moon rises late."})
    reports, stop = [], threading.Event()
    with RagQA.open(tmp_path / "index", SETTINGS, IngestConfig(max_prune_share=0.0)) as qa:  # any removal is too many
        watcher = threading.Thread(target=qa.watch, args=([str(root)], reports.append, stop))
        watcher.start()
        try:
            wait_for(lambda: len(reports) == 1)
            (root / "a.txt").unlink()
            wait_for(lambda: len(reports) == 2)
            assert reports[1].removed == [] and [r["why"] for r in reports[1].prune_refused] == ["share"]
            (root / "d.txt").write_text("River safety rules.")
            wait_for(lambda: any(r.added for r in reports[2:]))
            assert watcher.is_alive() and len(qa.store.files()) == 4  # nothing removed, the new file indexed
        finally:
            stop.set()
            watcher.join(60)
    assert all(r.removed == [] for r in reports)


@pytest.mark.integration
def test_the_command_refuses_a_vanished_root_and_too_large_a_prune_until_forced(tmp_path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rag_qa.cli", *args], capture_output=True, text=True, timeout=600, env=cli_env())

    hr, index = tmp_path / "kb" / "hr", str(tmp_path / "index")
    write_files(hr, {**HR_FILES, "rota.txt": "The desk rota changes in October."})

    def groups() -> dict[str, list[str]]:
        listed = json.loads(run("info", "--files", "--index", index, "--json").stdout)["file_list"]
        return {Path(f["source"]).name: f["groups"] for f in listed}

    assert run("index", str(hr), "--index", index, "--groups", "hr", "--quiet").returncode == 0
    os.replace(hr, tmp_path / "away")
    vanished = run("index", str(hr), "--index", index, "--prune", "--quiet")
    assert vanished.returncode == 0 and "removed" not in vanished.stdout.replace("0 removed", "")
    assert "not pruned" in vanished.stderr and "missing" in vanished.stderr
    os.replace(tmp_path / "away", hr)
    assert run("index", str(hr), "--index", index, "--quiet").returncode == 0
    assert groups() == {"sal.txt": ["hr"], "leave.md": ["hr"], "rota.txt": ["hr"]}

    (hr / "leave.md").unlink()
    (hr / "rota.txt").unlink()
    refused = run("index", str(hr), "--index", index, "--prune", "--json", "--quiet")
    assert refused.returncode == 2 and "--force" in refused.stderr and "2 of the 3" in refused.stderr
    assert [r["why"] for r in json.loads(refused.stdout)["prune_refused"]] == ["share"] and len(groups()) == 3
    forced = run("index", str(hr), "--index", index, "--prune", "--force", "--json", "--quiet")
    assert forced.returncode == 0 and json.loads(forced.stdout)["files_removed"] == 2 and groups() == {"sal.txt": ["hr"]}
    assert run("index", str(hr), "--index", index, "--force").returncode == 2  # --force only means something with --prune
    helped = run("index", "--help").stdout
    assert "--max-prune-share" in helped and "--force" in helped


def test_a_link_out_of_a_synced_folder_is_not_indexed_and_cannot_regroup_another_folders_document(tmp_path: Path) -> None:
    """Found in review: `kb/wiki/notes.txt -> ../hr/sal.txt` gave the hr document the wiki run's groups."""
    (tmp_path / "kb" / "hr").mkdir(parents=True)
    (tmp_path / "kb" / "wiki").mkdir()
    (tmp_path / "kb" / "hr" / "sal.txt").write_text("The salary band is ZEBRA-7731.")
    (tmp_path / "kb" / "wiki" / "faq.txt").write_text("The wiki answers questions.")
    with RagQA.open(tmp_path / "index") as qa:
        qa.index([tmp_path / "kb" / "hr"], groups=["hr"])
        (tmp_path / "kb" / "wiki" / "notes.txt").symlink_to(tmp_path / "kb" / "hr" / "sal.txt")
        report = qa.index([tmp_path / "kb" / "wiki"], groups=["wiki"], prune=True)
        groups = {Path(f["source"]).name: f["groups"] for f in qa.store.files()}
    assert groups == {"sal.txt": ["hr"], "faq.txt": ["wiki"]}
    assert [s["path"] for s in report.files_skipped] == [str(tmp_path / "kb" / "wiki" / "notes.txt")]
    assert "outside" in report.files_skipped[0]["reason"]


def test_a_subfolder_that_is_empty_now_is_not_pruned(tmp_path: Path) -> None:
    """Found in review: a share unmounted below the synced folder (its mount point left empty) had
    its documents pruned when they were under the share limit."""
    kb = tmp_path / "kb"
    for folder, count in (("share", 3), ("docs", 4)):
        (kb / folder).mkdir(parents=True)
        for i in range(count):
            (kb / folder / f"{folder}{i}.txt").write_text(f"Document {i} of the {folder} folder.")
    with RagQA.open(tmp_path / "index") as qa:
        qa.index([kb])
        for file in (kb / "share").iterdir():
            file.unlink()  # the mount point is left, empty
        report = qa.index([kb], prune=True)
        assert report.removed == [] and [r["why"] for r in report.prune_refused] == ["emptied"]
        assert len(qa.store.files()) == 7
        (kb / "share").rmdir()  # gone for good: the folder goes too
        assert len(qa.index([kb], prune=True).removed) == 3
