"""Document access groups in both stores (FAISS + SQLite and a real PostgreSQL server): kept,
changed without re-embedding, read from indexes made before groups; and the property that matters —
for random documents, groups, keys, queries, retrieval modes and top_k, a key's hits are exactly
the hits of an index holding only the documents it may read, and every answer and closest-match
hint comes from such a document."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers import REPO, cli_env, run_on_index_database
from service_process import start_service, stop

from rag_qa.config import ChunkingConfig, IndexSettings, ReaderConfig, RetrievalConfig, ScoringConfig, VectorIndexConfig
from rag_qa.errors import NotFoundError
from rag_qa.indexer import add_documents
from rag_qa.integrations.haystack import PassageRetriever
from rag_qa.pipeline import RagQA
from rag_qa.reader import Reader
from rag_qa.records import Document, Passage
from rag_qa.store import open_store

GROUPS = ("hr", "legal", "ops")
WORDS = "ladder angle drill battery loan library moon river seven minutes safety budget shed nine keys window".split()
httpx = pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")
SETTINGS = IndexSettings(chunking=ChunkingConfig(max_tokens=24, overlap_tokens=4), vector_index=VectorIndexConfig(index_type="flat"))


def stored(source: str, groups: tuple[str, ...] | None, content_hash: str = "h") -> tuple[Document, list[Passage]]:
    text = f"the text of {source}"
    return Document(source, text, content_hash, (), groups), [Passage(Passage.make_id(source, 0, text), text, source, 0, len(text))]


@pytest.fixture(params=["faiss", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "ix") if request.param == "faiss" else request.getfixturevalue("postgres_url")


def test_groups_are_stored_kept_and_changed_without_reembedding(location: str) -> None:
    store = open_store(location, SETTINGS, dimension=4)
    vectors = np.eye(4, dtype=np.float32)
    store.replace_files([stored("hr.txt", ("hr",)), stored("both.txt", ("hr", "legal")), stored("all.txt", None)], vectors[:3])
    assert {f["source"]: f["groups"] for f in store.files()} == {"hr.txt": ["hr"], "both.txt": ["hr", "legal"], "all.txt": []}
    assert store.visible_sources([]) == ["all.txt"]
    assert store.visible_sources(["legal"]) == ["all.txt", "both.txt"]
    assert store.visible_sources(["hr", "ops"]) == ["all.txt", "both.txt", "hr.txt"]
    store.replace_files([stored("hr.txt", None, "h2")], vectors[:1])  # a changed file keeps its groups
    assert store.visible_sources(["legal"]) == ["all.txt", "both.txt"] and store.file_hash("hr.txt") == "h2"
    before = [(p.id, v.tolist()) for p, v in store.iter_passages()]
    assert store.set_groups("all.txt", ["ops"]) and not store.set_groups("missing.txt", ["ops"])
    assert store.visible_sources(["legal"]) == ["both.txt"]
    assert [(p.id, v.tolist()) for p, v in store.iter_passages()] == before  # no passage or vector touched
    assert [h.passage.source for h in store.search(vectors[0], 3, sources=store.visible_sources(["ops"]))] == ["all.txt"]
    store.close()


def test_an_index_made_before_groups_reads_as_ungrouped_and_upgrades(location: str) -> None:
    store = open_store(location, SETTINGS, dimension=4)
    store.replace_files([stored("a.txt", None), stored("b.txt", None)], np.eye(4, dtype=np.float32)[:2])
    store.close()
    run_on_index_database(location, "ALTER TABLE {s}files DROP COLUMN groups")
    with open_store(location, read_only=True) as old:
        assert [f["groups"] for f in old.files()] == [[], []] and old.visible_sources(["hr"]) == ["a.txt", "b.txt"]
    with open_store(location) as upgraded:
        assert upgraded.set_groups("a.txt", ["hr"]) and upgraded.visible_sources(["legal"]) == ["b.txt"]


# ------------------------------------------------------------------ the property
documents = st.lists(
    st.tuples(st.lists(st.sampled_from(WORDS), min_size=3, max_size=40), st.sets(st.sampled_from(GROUPS), max_size=2)), min_size=1, max_size=6
)
key_groups = st.sets(st.sampled_from(GROUPS), max_size=2)
queries = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)


def build(where: str, corpus: list[tuple[list[str], set[str]]], embedder, keep=lambda groups: True) -> RagQA:
    """An index of the corpus's documents (those `keep` accepts), in corpus order."""
    store = open_store(where, SETTINGS)
    chosen = [
        Document(f"doc{i}.txt", f"Document {i}. " + " ".join(words) + ".", f"hash{i}", (), tuple(sorted(groups)))
        for i, (words, groups) in enumerate(corpus)
        if keep(groups)
    ]
    add_documents(chosen, store, embedder)
    return RagQA(store, embedder)


def scratch(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh index location for one generated example."""
    if backend == "faiss":
        return tempfile.mkdtemp(dir=request.getfixturevalue("tmp_path"))
    return f"{request.getfixturevalue('postgres_server')}#g_{uuid.uuid4().hex[:12]}"


RARE_WORDS_SCORING = ScoringConfig(answer_words_scale=-2.0, answer_rare_words_scale=3.0, answer_threshold=0.2)


@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_a_keys_hits_answers_and_hints_are_those_of_an_index_of_what_it_may_read(backend, request, embedder, tiny_roberta) -> None:
    reader = Reader(ReaderConfig(model=tiny_roberta, max_seq_len=64, doc_stride=16, max_query_tokens=16))

    @settings(max_examples=25 if backend == "faiss" else 12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(corpus=documents, key=key_groups, query=queries, mode=st.sampled_from(["dense", "bm25", "hybrid"]), top_k=st.integers(1, 6))
    def check(corpus, key, query, mode, top_k) -> None:
        full = build(scratch(backend, request), corpus, embedder)
        alone = build(scratch(backend, request), corpus, embedder, keep=lambda groups: not groups or bool(groups & key))
        try:
            readable = {f"doc{i}.txt" for i, (_, groups) in enumerate(corpus) if not groups or groups & key}
            assert set(full.store.visible_sources(sorted(key))) == readable
            for qa in (full, alone):  # a scoring that weighs the question words' rarity, which must be the alone index's
                qa.reader, qa.retriever.config, qa.scoring = reader, RetrievalConfig(mode=mode, top_k=top_k), RARE_WORDS_SCORING
            hits = full.search(query, groups=sorted(key))
            expected = alone.search(query)
            assert hits.word_rarity == pytest.approx(expected.word_rarity)
            assert [h.passage.id for h in hits] == [h.passage.id for h in expected]
            assert [h.score for h in hits] == pytest.approx([h.score for h in expected], rel=1e-6, abs=1e-9)
            assert {h.passage.source for h in hits} <= readable
            answered, reference = full.ask(query, groups=sorted(key)), alone.ask(query)
            shown = answered.to_dict()["answers"] + [answered.to_dict().get("best_guess")] * answered.abstained
            assert {a["source"] for a in shown if a} <= readable  # answers and the closest-match hint
            assert answered.abstained == reference.abstained
            assert [(a.text, a.source, a.start) for a in answered.answers] == [(a.text, a.source, a.start) for a in reference.answers]
            assert [a.confidence for a in answered.answers] == pytest.approx([a.confidence for a in reference.answers], abs=1e-6)
        finally:
            full.store.close()
            alone.store.close()

    check()


# ------------------------------------------------------------------ every entry point
def rag_qa(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "rag_qa.cli", *args], capture_output=True, text=True, timeout=300, env=cli_env())
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["faiss", "postgresql"])
def test_groups_hold_through_the_cli_python_haystack_and_http(backend: str, tmp_path: Path, request: pytest.FixtureRequest, tiny_bert: str) -> None:
    index = str(tmp_path / "index") if backend == "faiss" else request.getfixturevalue("postgres_url")
    pdf, handbook = (str(REPO / "data" / name) for name in ("safety-guide.pdf", "handbook.md"))
    rag_qa("index", pdf, "--groups", "safety", "--index", index, "--quiet")
    rag_qa("index", str(REPO / "data"), "--index", index, "--quiet")  # the unchanged PDF keeps its group
    rag_qa("groups", "set", handbook, "hr", "--index", index)
    listed = json.loads(rag_qa("groups", "list", "--index", index, "--json"))["documents"]
    others = {str(p): [] for p in (REPO / "data").iterdir() if str(p) not in (pdf, handbook)}  # the FAQ, the slide deck
    assert {d["source"]: d["groups"] for d in listed} == {**others, pdf: ["safety"], handbook: ["hr"]}

    with RagQA.open(index, read_only=True) as qa:
        for mode in ("dense", "bm25", "hybrid"):
            assert pdf not in {h.passage.source for h in qa.search("extension ladder angle", 5, mode=mode, groups=["hr"])}
            assert pdf in {h.passage.source for h in qa.search("extension ladder angle", 5, mode=mode, groups=["safety"])}
        with pytest.raises(NotFoundError):
            qa.show(pdf, groups=["hr"])
        assert qa.show(pdf, 3, groups=["safety"]).page == 3
    found = PassageRetriever(index, top_k=5, mode="hybrid", groups=["hr"]).run("extension ladder angle")["documents"]
    assert found and pdf not in {d.meta["source"] for d in found}

    keys = {
        name: json.loads(rag_qa("keys", "create", "--role", role, *groups, "--name", name, "--index", index, "--json"))["key"]
        for name, role, groups in (("hr reader", "reader", ["--groups", "hr"]), ("safety reader", "reader", ["--groups", "safety"]),
                                   ("hr editor", "editor", ["--groups", "hr"]), ("admin", "admin", []))
    }  # fmt: skip
    auth = {name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()}
    process, url = start_service(index, tiny_bert, "--upload-dir", str(tmp_path / "uploads"))
    try:
        hr, safety = auth["hr reader"], auth["safety reader"]
        assert {d["source"] for d in httpx.get(f"{url}/documents", headers=hr).json()["documents"]} == {*others, handbook}
        assert httpx.get(f"{url}/health", headers=hr).json()["files"] == len(others) + 1
        for retrieval in ("dense", "bm25", "hybrid"):
            body = {"query": "extension ladder angle", "top_k": 5, "retrieval": retrieval}
            assert pdf not in {r["source"] for r in httpx.post(f"{url}/search", json=body, headers=hr).json()["results"]}
            assert pdf in {r["source"] for r in httpx.post(f"{url}/search", json=body, headers=safety).json()["results"]}
        answered = httpx.post(f"{url}/ask", json={"question": "At what angle should an extension ladder stand?"}, headers=hr, timeout=120).json()
        assert pdf not in {a["source"] for a in answered["answers"] + [answered.get("best_guess") or {"source": None}]}
        asked_for = httpx.post(f"{url}/ask", json={"question": "ladder angle?", "filters": {"sources": [pdf]}}, headers=hr, timeout=120)
        assert asked_for.status_code == 404  # as if it were not indexed
        for path in (f"/documents/{pdf}/text", f"/documents/{pdf}/pages/3.png", f"/documents/{pdf}/boxes?start=0&end=10"):
            assert httpx.get(url + path, headers=hr).status_code == 404 and httpx.get(url + path, headers=safety).status_code == 200
        editor = auth["hr editor"]
        uploaded = httpx.post(f"{url}/documents", files=[("files", ("notes.txt", b"The shed opens at nine."))], headers=editor, timeout=120)
        assert uploaded.status_code == 200 and "passages_total" in uploaded.json()
        notes = uploaded.json()["documents"][0]["source"]
        assert {d["source"]: d["groups"] for d in httpx.get(f"{url}/documents", headers=hr).json()["documents"]}[notes] == ["hr"]  # the editor's own
        assert notes not in {d["source"] for d in httpx.get(f"{url}/documents", headers=safety).json()["documents"]}
        other = httpx.post(f"{url}/documents", files=[("files", ("x.txt", b"Text."))], data={"groups": "legal"}, headers=editor, timeout=60)
        assert other.status_code == 403
        assert httpx.put(f"{url}/documents/{pdf}/groups", json={"groups": ["hr"]}, headers=editor).status_code == 404
        assert httpx.put(f"{url}/documents/{notes}/groups", json={"groups": []}, headers=editor).status_code == 403
        assert httpx.put(f"{url}/documents/{pdf}/groups", json={"groups": []}, headers=auth["admin"]).status_code == 200
        assert httpx.get(f"{url}/documents/{pdf}/text", headers=hr).status_code == 200  # now every key reads it
    finally:
        stop(process)
    events = json.loads(rag_qa("audit", "--index", index, "--json"))["events"]
    assert [(e["action"], e["groups"]) for e in events if e["action"] == "set groups"] == [("set groups", ["hr"]), ("set groups", [])]


def test_a_document_hidden_while_a_search_runs_is_left_out(location: str, embedder, tiny_roberta: str) -> None:
    """Who may read is checked again once the passages and their neighbours' text are read: a
    document an admin restricts meanwhile (here: while its text is read for widening) is not shown
    to a key that may no longer read it, by `search` or by `ask`."""
    store = open_store(location, SETTINGS)
    add_documents([
        Document("open.txt", "The drill battery lasts forty minutes. " * 4, "h1", (), ()),
        Document("soon-hr.txt", "The ladder angle is seventy five degrees. " * 4, "h2", (), ()),
    ], store, embedder)  # fmt: skip
    qa = RagQA(store, embedder)
    qa.reader = Reader(ReaderConfig(model=tiny_roberta, max_seq_len=64, doc_stride=16, max_query_tokens=16))
    qa.retriever.config = RetrievalConfig(mode="hybrid", top_k=2)
    read_text = store.document_text

    def restricted_meanwhile(source: str) -> str | None:
        store.set_groups("soon-hr.txt", ["hr"])
        return read_text(source)

    try:
        assert "soon-hr.txt" in {h.passage.source for h in qa.search("ladder angle", groups=["ops"])}  # readable until now
        store.document_text = restricted_meanwhile  # type: ignore[method-assign]
        raced = qa.search("ladder angle", groups=["ops"])
        assert "soon-hr.txt" not in {h.passage.source for h in raced}
        store.document_text = read_text  # type: ignore[method-assign]
        fresh = qa.search("ladder angle", groups=["ops"])  # soon-hr.txt is hidden now
        assert raced.word_rarity == fresh.word_rarity  # the hidden document's words counted nowhere
        assert [(h.passage.id, h.score) for h in raced] == [(h.passage.id, pytest.approx(h.score)) for h in fresh]  # nor its BM25
        store.document_text = restricted_meanwhile  # type: ignore[method-assign]
        store.set_groups("soon-hr.txt", [])
        result = qa.ask("What is the ladder angle?", groups=["ops"])
        shown = result.to_dict()["answers"] + [result.to_dict().get("best_guess")]
        assert "soon-hr.txt" not in {a["source"] for a in shown if a}
    finally:
        store.close()
