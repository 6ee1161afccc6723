"""Both stores with random vectors: search against exact numpy search, idempotent file
replacement, deletes, full text, saved documents and visibility across handles, run against the
FAISS + SQLite folder and a real PostgreSQL + pgvector server; then the FAISS store's recovery
from stale or damaged files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import with_sqlite_steps

from rag_qa.config import EmbedderConfig, IndexSettings, VectorIndexConfig
from rag_qa.errors import ConfigError, IndexCorruptError, IndexMismatchError, RagQAError
from rag_qa.records import Document, Passage
from rag_qa.saved_scoring import load_scoring, save_scoring
from rag_qa.config import ScoringConfig
from rag_qa.store import FaissStore, PassageStore, open_store
from rag_qa.store.faiss_store import DATABASE, VECTORS

DIM = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def document(source: str, content_hash: str, page_starts: tuple[int, ...] = (), text: str = "") -> Document:
    return Document(source, text or f"the text of {source}", content_hash, page_starts)


def passages(source: str, n: int, tag: str = "") -> list[Passage]:
    return [Passage(Passage.make_id(source, i, f"{tag}{i}"), f"text {tag} number {i} of {source}", source, i, i + 1) for i in range(n)]


@pytest.fixture(params=["faiss", "postgresql"])
def location(request, tmp_path):
    """Where a fresh index goes: a folder, or a new schema on the session's PostgreSQL server."""
    if request.param == "faiss":
        return str(tmp_path / "ix")
    return request.getfixturevalue("postgres_url")


def new_store(path, index_type="flat", **vector_settings):
    settings = IndexSettings(vector_index=VectorIndexConfig(index_type=index_type, **vector_settings))
    return open_store(path, settings, dimension=DIM)


def store_with_a_file(path, rng: np.random.Generator) -> FaissStore:
    """A flat store holding one file "a" of 10 passages."""
    store = new_store(path)
    store.replace_files([(document("a", "h", ()), passages("a", 10))], unit(rng, 10))
    return store


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_search_matches_exact_numpy_search(location, index_type):
    rng = np.random.default_rng(0)
    vectors = unit(rng, 2000)
    store = new_store(location, index_type)
    store.replace_files([(document("f", "h", ()), passages("f", 2000))], vectors)
    queries = unit(rng, 50)
    exact = np.argsort(-queries @ vectors.T, axis=1)[:, :10]
    hits = store.search_many(queries, top_k=10)
    recall = np.mean([len({h.passage.char_start for h in row} & set(e)) / 10 for row, e in zip(hits, exact)])
    assert recall == 1.0 if index_type == "flat" else recall >= 0.95
    top = hits[0][0]
    assert top.score == pytest.approx(float(queries[0] @ vectors[top.passage.char_start]), abs=1e-5)
    assert store.info().index_type == index_type
    store.close()


def test_filtered_search_still_returns_top_k(location):
    """Filters apply inside the vector search, not after it: a rare source still fills top_k."""
    rng = np.random.default_rng(7)
    store = new_store(location, "hnsw")
    vectors = unit(rng, 1512)
    store.replace_files([(document("common", "h", ()), passages("common", 1500)), (document("rare", "h", ()), passages("rare", 12))], vectors)
    hits = store.search(unit(rng, 1)[0], 10, sources=["rare"])
    assert len(hits) == 10 and {h.passage.source for h in hits} == {"rare"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    wanted = [p.id for p in passages("common", 5)]
    assert {h.passage.id for h in store.search(unit(rng, 1)[0], 10, ids=wanted)} == set(wanted)
    # among given ids: each scored exactly, best first (hybrid retrieval scores what only BM25 found)
    query = unit(rng, 1)[0]
    exact = sorted(((float(vectors[i] @ query), pid) for i, pid in enumerate(wanted)), reverse=True)[:3]
    found = store.search(query, 3, ids=wanted)
    assert [h.passage.id for h in found] == [pid for _, pid in exact] and [h.score for h in found] == pytest.approx([s for s, _ in exact], abs=1e-5)
    assert store.search(query, 3, sources=["rare"], ids=wanted) == []  # the ids never widen what may be read
    store.close()


def test_both_backends_implement_the_declared_store_interface(location):
    store = new_store(location)
    assert isinstance(store, PassageStore)
    with pytest.raises(ConfigError, match="top_k must be >= 1"):
        store.search(np.ones(DIM, np.float32), 0)
    store.close()


def test_replacing_a_file_swaps_its_passages_and_delete_removes_them(location):
    rng = np.random.default_rng(2)
    store = new_store(location)
    store.replace_files([(document("a", "h1", ()), passages("a", 5)), (document("b", "h1", ()), passages("b", 3))], unit(rng, 8))
    assert store.file_hash("a") == "h1" and store.count() == 8
    assert store.document_text("a") == "the text of a"
    store.replace_files([(document("a", "h2", (0, 10), text="new text\r\n of a"), passages("a", 2, tag="v2"))], unit(rng, 2))
    assert store.count() == 5 and store.file_hash("a") == "h2" and store.page_starts("a") == (0, 10)
    assert store.document_text("a") == "new text\r\n of a" and store.document_text("nope") is None
    assert all("v2" in h.passage.text for h in store.search(unit(rng, 1)[0], 10, sources=["a"]))
    assert store.delete_source("b") == 3
    assert store.delete_source("b") == 0
    assert store.count() == 2 and store.info().files == 1
    assert [f["source"] for f in store.files()] == ["a"]
    store.flush()
    assert store.check() == []
    store.close()
    with open_store(location, read_only=True) as reader:
        assert reader.check() == [] and reader.count() == 2


def test_passages_and_vectors_round_trip(location):
    rng = np.random.default_rng(8)
    store = new_store(location)
    original = passages("a", 4)
    vectors = unit(rng, 4)
    store.replace_files([(document("a", "h", (0, 7)), original)], vectors)
    stored = list(store.iter_passages())
    assert [p for p, _ in stored] == original
    assert np.array_equal(np.vstack([v for _, v in stored]), vectors)
    store.close()


def test_full_text_search_ranks_matching_passages(location):
    store = new_store(location)
    docs = [Passage(str(i), t, "s", i, i + 1) for i, t in enumerate(["the red fox jumps", "a blue whale sings", "red red roses"])]
    store.replace_files([(document("s", "h", ()), docs)], unit(np.random.default_rng(3), 3))
    assert [h.passage.id for h in store.search_text("red roses?", 5)] == ["2", "0"]
    assert store.search_text("!!!", 5) == []
    store.close()


def test_saved_scoring_round_trips_and_is_tied_to_the_reader_and_retrieval_mode(location):
    store = new_store(location)
    fitted = ScoringConfig(tau=-0.6, retrieval_weight=1.0, answer_scale=0.7)
    save_scoring(store, fitted, "my/reader", "dense", {"fit_f1": 50.0})
    hybrid = ScoringConfig(tau=-1.0, retrieval_temperature=0.005)
    save_scoring(store, hybrid, "my/reader", "hybrid", {"fit_f1": 40.0})
    assert load_scoring(store, "my/reader", "dense") == fitted and load_scoring(store, "my/reader", "hybrid") == hybrid
    assert load_scoring(store, "other/reader", "dense") is None and load_scoring(store, "my/reader", "bm25") is None
    save_scoring(store, hybrid, "my/reader", "dense", {"fit_f1": 51.0})  # a new fit replaces the old one
    assert load_scoring(store, "my/reader", "dense") == hybrid
    int8 = ScoringConfig(tau=-1.5)
    save_scoring(store, int8, "my/reader", "dense", {"fit_f1": 49.0}, precision="int8")  # int8 keeps its own fit
    assert load_scoring(store, "my/reader", "dense", precision="int8") == int8 and load_scoring(store, "my/reader", "dense") == hybrid
    store.close()


def test_other_models_and_dimensions_are_clear_errors(location):
    new_store(location).close()
    other = IndexSettings(embedder=EmbedderConfig(model="some/other-model"))
    with pytest.raises(IndexMismatchError, match="some/other-model"):
        open_store(location, other)
    with pytest.raises(IndexMismatchError, match="16-dimensional"):
        open_store(location, dimension=768)
    with open_store(location) as store, pytest.raises(IndexMismatchError, match="16-dimensional"):
        store.replace_files([(document("a", "h", ()), passages("a", 1))], np.ones((1, 3), np.float32))


def test_a_second_handle_sees_writes_made_through_the_first(location):
    rng = np.random.default_rng(6)
    writer = new_store(location)
    writer.replace_files([(document("a", "h", ()), passages("a", 5))], unit(rng, 5))
    reader = open_store(location, read_only=True)
    assert len(reader.search(unit(rng, 1)[0], 10)) == 5
    other_writer = new_store(location)
    other_writer.replace_files([(document("b", "h", ()), passages("b", 4))], unit(rng, 4))
    writer.replace_files([(document("c", "h", ()), passages("c", 3))], unit(rng, 3))  # catches up first
    assert len(reader.search(unit(rng, 1)[0], 100)) == 12
    assert writer.info().vectors == 12
    writer.close()
    other_writer.close()
    assert reader.check() == []
    with pytest.raises(RagQAError, match="read-only"):
        reader.delete_source("a")
    reader.close()


# ----------------------------------------------------------------------------- FAISS store only


def test_auto_switches_to_hnsw_above_threshold(tmp_path):
    rng = np.random.default_rng(1)
    store = new_store(tmp_path / "ix", "auto", hnsw_threshold=100)
    store.replace_files([(document("a", "h", ()), passages("a", 50))], unit(rng, 50))
    assert store.info().index_type == "flat"
    store.replace_files([(document("b", "h", ()), passages("b", 80))], unit(rng, 80))
    assert store.info().index_type == "hnsw"
    store.delete_source("b")  # HNSW cannot delete: rebuilt from SQLite, back to flat
    assert store.info().index_type == "flat" and store.info().vectors == 50
    store.close()
    assert FaissStore.open(tmp_path / "ix", read_only=True).check() == []


def test_stale_faiss_file_is_detected_and_rebuilt(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "ix"
    store = store_with_a_file(path, rng)
    store.flush()
    shutil.copy(path / VECTORS, tmp_path / "old.faiss")
    store.replace_files([(document("b", "h", ()), passages("b", 10))], unit(rng, 10))
    store.close()
    shutil.copy(tmp_path / "old.faiss", path / VECTORS)  # as if killed before the last save
    assert any("generation" in p for p in FaissStore.open(path, read_only=True).check())
    reopened = FaissStore.open(path)
    assert reopened.recovered
    assert reopened.info().vectors == 20
    reopened.flush()
    assert reopened.check() == []
    reopened.close()


def test_leftover_temp_and_damaged_faiss_file_are_handled(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "ix"
    store_with_a_file(path, rng).close()
    (path / (VECTORS + ".tmp")).write_bytes(b"half-written")
    (path / VECTORS).write_bytes(b"garbage")
    store = FaissStore.open(path)
    assert store.recovered and not (path / (VECTORS + ".tmp")).exists()
    assert len(store.search(unit(rng, 1)[0], 3)) == 3
    store.close()
    assert FaissStore.open(path, read_only=True).check() == []


def test_unreadable_database_is_a_clear_error(tmp_path):
    path = tmp_path / "ix"
    new_store(path).close()
    (path / DATABASE).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IndexCorruptError, match="not a readable"):
        FaissStore.open(path)
    with pytest.raises(IndexCorruptError, match="no rag-qa index"):
        FaissStore.open(tmp_path / "nothing", read_only=True)


def test_full_text_search_takes_any_query(location):
    """Punctuation cannot break the query syntax, and a 100,000-character question stays cheap."""
    store = new_store(location)
    docs = [Passage(str(i), t, "s", i, i + 1) for i, t in enumerate(["the red fox jumps", "a blue whale sings"])]
    store.replace_files([(document("s", "h", ()), docs)], unit(np.random.default_rng(4), 2))
    assert [h.passage.id for h in store.search_text('"red" AND (fox OR NOT) NEAR/2 *', 5)] == ["0"]
    assert [h.passage.id for h in store.search_text("whale " + "x" * 100_000 + " ?" * 20_000, 5)] == ["1"]
    store.close()


def test_passages_read_back_know_where_their_pages_break(location):
    """Page numbers travel with the passage: an answer on the next page inside it gets that page."""
    store = new_store(location)
    text = "page one text. page two text."
    spanning = Passage("s", text[5:25], "paged.pdf", 5, 25, page=1)
    store.replace_files([(document("paged.pdf", "h", (0, 15), text=text), [spanning])], unit(np.random.default_rng(5), 1))
    for passage in [store.search(unit(np.random.default_rng(6), 1)[0], 1)[0].passage, store.search_text("page two", 1)[0].passage]:
        assert passage.page_breaks == (10,) and passage.page_at(0) == 1 and passage.page_at(text.index("two") - 5) == 2
    assert next(store.iter_passages())[0].page_breaks == (10,)
    store.close()


def test_a_damaged_manifest_is_a_typed_error_and_repair_acts_on_the_type_not_the_text(tmp_path, capsys):
    """`check --repair` writes the manifest back only for ManifestUnreadable: an index whose
    folder name holds the words "unreadable manifest" and whose manifest is of a newer format must
    be reported, not downgraded to this version's manifest."""
    import json

    from rag_qa.cli import main
    from rag_qa.errors import ManifestUnreadable

    damaged = tmp_path / "ix"
    new_store(damaged).close()
    (damaged / "manifest.json").write_text("{ not json")
    with pytest.raises(ManifestUnreadable, match="check --repair"):
        FaissStore.open(damaged)
    newer = tmp_path / "unreadable manifest"
    new_store(newer).close()
    manifest = json.loads((newer / "manifest.json").read_text())
    (newer / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexCorruptError) as raised:
        FaissStore.open(newer)
    assert not isinstance(raised.value, ManifestUnreadable)
    assert main(["check", "--repair", "--index", str(newer)]) == 1
    assert json.loads((newer / "manifest.json").read_text())["format_version"] == 99  # left as it was
    assert "format 99 is not supported" in capsys.readouterr().out
    assert main(["check", "--repair", "--index", str(damaged)]) == 0  # the typed error is repaired


def test_a_metadata_write_holds_the_writer_lock_so_an_open_never_removes_its_temp_file(tmp_path, monkeypatch):
    """Opening a writable store removes leftover temp files under the writer lock. A metadata write
    (a key being created) holds that lock from its temp file to its rename, so a concurrent open
    waits for it instead of deleting the temp file under it. Checked with events, not timing: while
    the write is held after making its temp file, the lock is seen taken (a non-blocking probe),
    and the open gets the lock only after the write has finished."""
    import fcntl
    import os
    import threading

    import rag_qa.store.faiss_store as faiss_store
    from rag_qa.store.faiss_store import LOCK
    from rag_qa.store.writing import TEMP_SUFFIX, atomic_write

    folder = tmp_path / "ix"
    store = new_store(folder)
    temp_made, release, events = threading.Event(), threading.Event(), []

    def held_write(path, data):
        temp = path.parent / f"{path.name}.held{TEMP_SUFFIX}"
        temp.write_bytes(data)
        temp_made.set()
        assert release.wait(30), "the test never released the write"
        os.replace(temp, path)  # fails if an open removed the temp file meanwhile
        events.append("write finished")

    real_flock = fcntl.flock

    def watched_flock(handle, operation):
        result = real_flock(handle, operation)
        if threading.current_thread().name == "opener" and operation == fcntl.LOCK_EX and "open has the lock" not in events:
            events.append("open has the lock")  # (closing the store takes it again)
        return result

    monkeypatch.setattr(faiss_store, "atomic_write", held_write)
    monkeypatch.setattr(fcntl, "flock", watched_flock)
    failures: list[BaseException] = []

    def run(action):
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    writer = threading.Thread(target=run, args=(lambda: store.write_metadata("api-key-abc", {"id": "abc"}),))
    writer.start()
    assert temp_made.wait(30)
    probe = os.open(folder / LOCK, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):  # the writer lock is held while the temp file exists
            real_flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(probe)
        opener = threading.Thread(target=run, args=(lambda: FaissStore.open(folder).close(),), name="opener")
        opener.start()
        release.set()
        writer.join(30)
        opener.join(30)
    monkeypatch.setattr(faiss_store, "atomic_write", atomic_write)
    assert failures == [] and events == ["write finished", "open has the lock"]
    assert store.read_metadata("api-key-abc") == {"id": "abc"}
    store.close()


def test_a_filtered_full_text_search_does_the_same_work_whatever_hidden_passages_hold(tmp_path):
    """A key must not learn from a BM25 search's cost whether hidden documents use a word: over
    two indexes alike but for one word of the hidden passages, the filtered search runs the same
    number of SQLite VM instructions (counted with a progress handler: work, not time) and gives
    the same hits, cold (the readable words gathered) and warm (kept from the search before)."""

    def build(path, hidden_word):
        store = new_store(path)
        files = []
        for i in range(12):
            kind = "hidden" if i % 3 else "open"
            text = [f"{kind} passage {j} of file {i} about a {'ladder' if j == 0 else 'shed'}" if kind == "open" else f"a {hidden_word} {hidden_word} in hidden file {i}" for j in range(4)]
            files.append((document(f"{kind}{i}", "h"), [Passage(f"{i}-{j}", t, f"{kind}{i}", j, j + 1) for j, t in enumerate(text)]))
        store.replace_files(files, unit(np.random.default_rng(7), 48))
        return store, [f"open{i}" for i in range(0, 12, 3)]

    def counted(store, sources):
        return with_sqlite_steps(store, lambda: [(h.passage.id, round(h.score, 9)) for h in store.search_text("ladder", 5, sources)])

    without, readable = build(tmp_path / "without", "pencil")
    with_word, _ = build(tmp_path / "with", "ladder")
    for _ in ("cold", "warm"):
        assert counted(without, readable) == counted(with_word, readable)
    hits, _ = counted(without, readable)
    assert len(hits) == 4 and all(score > 0.01 for _, score in hits)
