"""The HTTP service on a real uvicorn server (loopback): the API, its limits and JSON errors, file
names that try to escape the upload folder, and concurrent asks and uploads on both backends."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rag_qa.cli import main
from rag_qa.config import ReaderConfig, ServerConfig
from rag_qa.pipeline import RagQA
from rag_qa.errors import QuestionError
from rag_qa.server.batching import AskBatcher, AskTimeout, Overloaded
from rag_qa.server.uploads import UploadRejected, safe_name
from helpers import READER, REPO, approx_floats, needs_shared
from rag_qa.server.background import live_service

httpx = pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")

LIBRARY = (
    "The Harborview Tool Library opened in 2019. Members may borrow a drill for seven days. "
    "Late returns cost two dollars a day. The library is run by volunteers from the neighbourhood."
)


@pytest.mark.parametrize(
    ("client_name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\evil.txt", "evil.txt"),
        ("/absolute/path/notes.md", "notes.md"),
        ("a\x00b\nc.txt", "a_b_c.txt"),
        ("..hidden.txt", "hidden.txt"),
        ("naïve café.html", "naïve café.html"),
        ("x" * 500 + ".txt", "x" * 196 + ".txt"),
    ],
)
def test_upload_names_are_reduced_to_safe_base_names(client_name: str, expected: str) -> None:
    assert safe_name(client_name) == expected


@pytest.mark.parametrize("client_name", ["", "..", "../..", "/", "....", None])
def test_names_with_nothing_usable_are_refused(client_name: str | None) -> None:
    with pytest.raises(UploadRejected) as refused:
        safe_name(client_name)
    assert refused.value.status == 400


@pytest.fixture(params=["faiss", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path):
    """A running service over an empty index, with small limits so they are easy to hit."""
    needs_shared(READER)
    location = str(tmp_path / "index") if request.param == "faiss" else request.getfixturevalue("postgres_url")
    config = ServerConfig(upload_dir=str(tmp_path / "uploads"), max_upload_mb=0.05, max_question_chars=200, max_top_k=10)
    with RagQA.open(location, reader=ReaderConfig(model=str(READER))) as qa:
        with live_service(qa, config) as url:
            yield url, location, tmp_path / "uploads"


def uploaded_files(storage: Path) -> list[str]:
    """The names of the files kept in the upload folder (each in a folder of its own)."""
    return sorted(p.name for p in storage.rglob("*") if p.is_file())


def kept_uploads(storage: Path, location: str) -> dict[str, bytes]:
    """The uploads kept, by name: in the upload folder on FAISS; in the index on PostgreSQL,
    whose upload folder is then left empty (it only stages a file while it is read)."""
    if "://" not in location:
        return {p.name: p.read_bytes() for p in storage.rglob("*") if p.is_file()}
    from rag_qa.store import open_store

    assert uploaded_files(storage) == []
    with open_store(location, read_only=True) as store:
        return {Path(source).name: store.original(source) for source in store.original_sources()}


def upload(url: str, *files: tuple[str, bytes]) -> httpx.Response:
    return httpx.post(f"{url}/documents", files=[("files", (name, data)) for name, data in files], timeout=120, headers={"Authorization": "Bearer open-service"})


@pytest.mark.integration
def test_upload_ask_list_and_delete(service, capsys: pytest.CaptureFixture[str]) -> None:
    url, location, storage = service
    assert httpx.get(f"{url}/health").json()["passages"] == 0
    report = upload(url, ("library.txt", LIBRARY.encode()), ("empty.txt", b"   ")).json()
    assert report["files_indexed"] == 1 and report["passages_added"] >= 1
    assert [s["reason"] for s in report["files_skipped"]] and list(kept_uploads(storage, location)) == ["library.txt"]
    library = next(d["source"] for d in report["documents"] if d["name"] == "library.txt")
    assert Path(library).parent.parent == storage  # each upload in a folder of its own
    assert [d["name"] for d in httpx.get(f"{url}/documents").json()["documents"]] == ["library.txt"]

    answer = httpx.post(f"{url}/ask", json={"question": "How long can members borrow a drill?", "top_k": 3}, timeout=60).json()
    assert main(["ask", "How long can members borrow a drill?", "--index", location, "--reader", str(READER), "--top-k", "3", "--json"]) == 0
    assert answer == approx_floats(json.loads(capsys.readouterr().out)), "the API answers as `rag-qa ask --json`"
    best = answer["answers"][0] if not answer["abstained"] else answer["best_guess"]
    assert best["source"] == library and LIBRARY[best["start"] : best["end"]] == best["text"]

    filtered = httpx.post(f"{url}/ask", json={"question": "When did it open?", "filters": {"sources": ["library.txt"]}}, timeout=60)
    assert filtered.status_code == 200
    for mode in ("dense", "bm25", "hybrid"):
        body = {"query": "borrow a drill", "top_k": 2, "retrieval": mode, "filters": {"sources": ["library.txt"]}}
        found = httpx.post(f"{url}/search", json=body, timeout=60).json()
        assert main(["search", "borrow a drill", "--index", location, "--top-k", "2", "--retrieval", mode, "--source", library, "--json"]) == 0
        assert found == approx_floats(json.loads(capsys.readouterr().out)), "the API searches as `rag-qa search --json`"
        assert found["results"] and {r["source"] for r in found["results"]} == {library}
    assert httpx.post(f"{url}/search", json={"query": "drill", "retrieval": "fuzzy"}, timeout=60).status_code == 422
    deleted = httpx.delete(f"{url}/documents/library.txt", headers={"Authorization": "Bearer open-service"}).json()
    assert deleted["passages_removed"] == report["passages_added"] and deleted["passages_total"] == 0
    assert kept_uploads(storage, location) == {} and list(storage.iterdir()) == []  # the file and its folder
    assert httpx.delete(f"{url}/documents/library.txt", headers={"Authorization": "Bearer open-service"}).status_code == 404


@pytest.mark.integration
def test_limits_answer_with_clear_json_errors(service) -> None:
    url, _, storage = service

    def ask(body: dict) -> tuple[int, str]:
        response = httpx.post(f"{url}/ask", json=body, timeout=60)
        return response.status_code, response.json()["error"]

    assert ask({"question": "x" * 201}) == (422, "the question has 201 characters; the limit is 200")
    assert ask({"question": "   "})[0] == 422
    assert ask({"question": "why?", "top_k": 0}) == (422, "top_k must be between 1 and 10, got 0")
    assert ask({"question": "why?", "top_k": 11})[0] == 422
    assert ask({"top_k": 3}) == (422, "invalid request: question: Field required")
    assert ask({"question": "why?", "filters": {"sources": ["nothing.pdf"]}})[0] == 404
    bad_type = upload(url, ("tool.exe", b"MZ binary"))
    assert bad_type.status_code == 415 and ".pdf" in bad_type.json()["error"]
    too_big = upload(url, ("big.txt", b"word " * 20_000))
    assert too_big.status_code == 413 and "limit" in too_big.json()["error"]
    declared = upload(url, ("huge.txt", b"word " * 60_000))  # refused from Content-Length, before reading
    assert declared.status_code == 413 and declared.json()["error"].startswith("the request is 0.3 MB")
    spread = upload(url, ("a.txt", b"word " * 6_000), ("b.txt", b"word " * 6_000))  # each fits, together they do not
    assert spread.status_code == 413
    assert list(storage.iterdir()) == [], "refused uploads leave nothing behind"
    schema = httpx.get(f"{url}/openapi.json").json()
    assert {"/ask", "/documents", "/documents/{source}", "/health"} <= set(schema["paths"])


@pytest.mark.integration
def test_an_upload_never_replaces_an_earlier_one_unless_asked(service) -> None:
    url, location, storage = service
    assert upload(url, ("library.txt", LIBRARY.encode())).status_code == 200
    again = upload(url, ("notes.txt", b"Fresh notes."), ("library.txt", b"A different library text."))
    assert again.status_code == 409 and "replace=true" in again.json()["error"]
    assert kept_uploads(storage, location) == {"library.txt": LIBRARY.encode()}
    replaced = httpx.post(
        f"{url}/documents", files=[("files", ("library.txt", b"The library opens at nine on Sundays."))], data={"replace": "true"},
        timeout=120, headers={"Authorization": "Bearer open-service"},
    )  # fmt: skip
    assert replaced.status_code == 200 and replaced.json()["files_indexed"] == 1
    shown = httpx.get(f"{url}/documents/library.txt/text").json()["text"]
    assert shown == "The library opens at nine on Sundays." and kept_uploads(storage, location) == {"library.txt": b"The library opens at nine on Sundays."}  # the old one is gone


@pytest.mark.integration
def test_hostile_file_names_stay_inside_the_upload_folder(service, tmp_path: Path) -> None:
    url, location, storage = service
    names = ["../../escaped.txt", "..\\..\\escaped2.txt", "/tmp/escaped3.txt", "sub/../../escaped4.txt"]
    for name in names:
        response = upload(url, (name, LIBRARY.encode()))
        assert response.status_code == 200, response.text
        assert Path(response.json()["documents"][0]["source"]).parent.parent == storage
    assert sorted(kept_uploads(storage, location)) == ["escaped.txt", "escaped2.txt", "escaped3.txt", "escaped4.txt"]
    outside = [p for p in tmp_path.rglob("escaped*") if p.parent.parent != storage] + list(tmp_path.parent.glob("escaped*"))
    assert outside == [] and not Path("/tmp/escaped3.txt").exists()


@pytest.mark.integration
def test_concurrent_asks_and_uploads_all_succeed(service) -> None:
    """16 questions from 8 threads while other threads upload 6 documents: every request
    succeeds, and the index ends with exactly the uploaded documents."""
    url, _, _ = service
    upload(url, ("library.txt", LIBRARY.encode()))

    def ask(i: int) -> int:
        return httpx.post(f"{url}/ask", json={"question": f"How much do late returns cost? ({i})"}, timeout=120).status_code

    def add(i: int) -> int:
        text = f"Workshop {i} is held on day {i} of the month. " * 30
        return upload(url, (f"workshop{i}.txt", text.encode())).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        asks = [pool.submit(ask, i) for i in range(16)]
        adds = [pool.submit(add, i) for i in range(6)]
        statuses = [f.result() for f in asks + adds]
    assert statuses == [200] * 22
    documents = httpx.get(f"{url}/documents").json()["documents"]
    assert sorted(d["name"] for d in documents) == sorted(["library.txt"] + [f"workshop{i}.txt" for i in range(6)])
    health = httpx.get(f"{url}/health").json()
    assert health["files"] == 7 and health["passages"] == sum(d["passages"] for d in documents)


def test_concurrent_questions_are_answered_as_one_batch_with_the_same_answers_whatever_their_filters(tmp_path: Path) -> None:
    needs_shared(READER)
    questions = (REPO / "scripts" / "sample_questions.txt").read_text().splitlines()
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=str(READER))) as qa:
        qa.index([REPO / "data"])
        documents = sorted(f["source"] for f in qa.store.files())
        filters = [None if i % 2 else [documents[i % len(documents)]] for i in range(len(questions))]  # as keys of different groups
        alone = [qa.ask(question, sources=only).to_dict() for question, only in zip(questions, filters)]
        batch_sizes: list[int] = []
        ask_each = qa.ask_each

        def counted(batch, *args, **kwargs):
            batch_sizes.append(len(batch))
            return ask_each(batch, *args, **kwargs)

        qa.ask_each = counted  # the real method, counting how questions were grouped
        batcher = AskBatcher(qa, max_wait_s=2.0, max_batch=len(questions))  # a full batch goes at once; 2 s covers slow thread starts
        with ThreadPoolExecutor(len(questions)) as pool:
            together = list(pool.map(lambda asked: batcher.ask(*asked).to_dict(), zip(questions, [None] * len(questions), filters)))
        assert together == approx_floats(alone)  # same decisions and texts; batch padding moves float digits
        assert sum(batch_sizes) == len(questions) and len(batch_sizes) < len(questions)
        with pytest.raises(QuestionError):
            batcher.ask("   ")  # a bad question fails alone, in its own thread
        assert batcher.ask(questions[0], top_k=3).to_dict()["question"] == questions[0]  # the worker lives on


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the worker is killed on purpose
def test_a_failing_question_fails_alone_and_a_dead_worker_is_replaced(tmp_path: Path, tiny_bert: str) -> None:
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=tiny_bert)) as qa:
        qa.index([REPO / "data" / "handbook.md"])
        ask_each = qa.ask_each

        def poisoned(batch, *args, **kwargs):
            if any("poison" in question for question in batch):
                raise RuntimeError("the reader failed on this question")
            return ask_each(batch, *args, **kwargs)

        qa.ask_each = poisoned
        batcher = AskBatcher(qa, max_wait_s=2.0, max_batch=4, timeout_s=60)  # the four arrive as one batch

        def ask(question: str) -> str:
            try:
                return batcher.ask(question).question
            except RuntimeError as exc:
                return f"failed: {exc}"

        questions = ["Who runs it?", "poison?", "Where is it?", "When does it open?"]
        with ThreadPoolExecutor(len(questions)) as pool:
            assert list(pool.map(ask, questions)) == ["Who runs it?", "failed: the reader failed on this question", "Where is it?", "When does it open?"]

        def broken(group):
            raise RuntimeError("the worker thread dies here")  # outside the per-batch guard, as a bug would

        batcher.timeout_s, batcher._answer = 1.0, broken
        with pytest.raises(AskTimeout, match="not answered within 1 s"):
            batcher.ask("Who runs it?")  # nobody answers it: the wait ends
        batcher._worker.join(60)
        assert not batcher._worker.is_alive()
        del batcher._answer  # the class's own method again
        batcher.timeout_s = 60.0
        assert batcher.ask("Who runs it?").question == "Who runs it?"  # a new worker answers


def test_a_full_queue_refuses_at_once(tmp_path: Path, tiny_bert: str) -> None:
    import threading

    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=tiny_bert)) as qa:
        qa.index([REPO / "data" / "handbook.md"])
        ask_each, entered, release = qa.ask_each, threading.Event(), threading.Event()

        def held(batch, *args, **kwargs):
            entered.set()
            release.wait(60)
            return ask_each(batch, *args, **kwargs)

        qa.ask_each = held
        batcher = AskBatcher(qa, max_wait_s=0.0, max_batch=1, max_queue=1, timeout_s=60)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(batcher.ask, "Who runs it?")
            assert entered.wait(60)  # the worker holds the first question
            second = pool.submit(batcher.ask, "Where is it?")  # waits in the queue (its one place)
            while batcher._queue.qsize() < 1:
                entered.wait(0.01)
            with pytest.raises(Overloaded, match="1 questions are already waiting"):
                batcher.ask("When does it open?")
            release.set()
            assert (first.result().question, second.result().question) == ("Who runs it?", "Where is it?")
