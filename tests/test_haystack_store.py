"""Haystack's own DocumentStore test suite against our RagQADocumentStore, on both backends: a real
FAISS + SQLite folder and a real PostgreSQL + pgvector server."""

from __future__ import annotations

import pytest
from haystack import Document, Pipeline
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.testing.document_store import DocumentStoreBaseExtendedTests

from rag_qa.errors import IndexMismatchError
from rag_qa.integrations.haystack import RagQADocumentStore, RagQAEmbeddingRetriever


class TestRagQADocumentStore(DocumentStoreBaseExtendedTests):
    @pytest.fixture
    def document_store(self, tmp_path):
        store = RagQADocumentStore(str(tmp_path / "index"), embedding_dim=768)
        yield store
        store.close()

    def test_write_documents(self, document_store):
        """Default policy is FAIL, and a failed batch writes nothing."""
        docs = [Document(id="1", content="one")]
        assert document_store.write_documents(docs) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([Document(id="2", content="two"), Document(id="1", content="again")])
        assert document_store.filter_documents() == docs


class TestPostgresDocumentStore(TestRagQADocumentStore):
    @pytest.fixture
    def document_store(self, postgres_url):
        store = RagQADocumentStore(postgres_url, embedding_dim=768)
        yield store
        store.close()


@pytest.fixture(params=["faiss", "postgresql"])
def location(request, tmp_path):
    return str(tmp_path / "index") if request.param == "faiss" else request.getfixturevalue("postgres_url")


def test_documents_survive_reopening_and_keep_exact_embeddings(location):
    path = location
    docs = [Document(content=f"doc {i}", meta={"i": i}, embedding=[0.1 * i, 0.5, -0.25]) for i in range(5)]
    store = RagQADocumentStore(path, embedding_dim=3)
    store.write_documents(docs)
    store.close()
    reopened = RagQADocumentStore(path)
    assert reopened.filter_documents() == docs
    assert reopened.store.check() == []
    reopened.close()


def test_other_dimension_is_a_clear_error(location):
    path = location
    RagQADocumentStore(path, embedding_dim=3).close()
    with pytest.raises(IndexMismatchError, match="3-dimensional"):
        RagQADocumentStore(path, embedding_dim=768)
    store = RagQADocumentStore(path)
    with pytest.raises(IndexMismatchError):
        store.write_documents([Document(content="x", embedding=[1.0, 0.0])])
    store.close()


def test_retriever_in_a_pipeline_returns_nearest_with_filters(location):
    store = RagQADocumentStore(location, embedding_dim=2)
    store.write_documents(
        [
            Document(id="east", content="east", meta={"lang": "en"}, embedding=[1.0, 0.0]),
            Document(id="north", content="north", meta={"lang": "en"}, embedding=[0.0, 1.0]),
            Document(id="nord", content="nord", meta={"lang": "de"}, embedding=[0.1, 0.99]),
        ]
    )
    pipeline = Pipeline()
    pipeline.add_component("retriever", RagQAEmbeddingRetriever(store, top_k=2))
    result = pipeline.run({"retriever": {"query_embedding": [0.0, 1.0]}})
    assert [d.id for d in result["retriever"]["documents"]] == ["north", "nord"]
    assert result["retriever"]["documents"][0].score == pytest.approx(1.0)
    only_en = {"field": "meta.lang", "operator": "==", "value": "en"}
    result = pipeline.run({"retriever": {"query_embedding": [0.0, 1.0], "filters": only_en}})
    assert [d.id for d in result["retriever"]["documents"]] == ["north", "east"]
    store.close()


def test_store_and_retriever_round_trip_to_dict(tmp_path):
    store = RagQADocumentStore(str(tmp_path / "index"), embedding_dim=4)
    retriever = RagQAEmbeddingRetriever(store, top_k=3)
    again = RagQAEmbeddingRetriever.from_dict(retriever.to_dict())
    assert again.top_k == 3 and again.document_store.path == store.path
    assert again.document_store.to_dict() == store.to_dict()
    again.document_store.close()
    store.close()


def test_skip_policy_counts_only_new(location):
    store = RagQADocumentStore(location)
    assert store.write_documents([Document(id="a", content="a")], DuplicatePolicy.SKIP) == 1
    assert store.write_documents([Document(id="a", content="a"), Document(id="b", content="b")], DuplicatePolicy.SKIP) == 1
    assert store.count_documents() == 2
    store.close()


@pytest.mark.parametrize("policy, kept", [(DuplicatePolicy.OVERWRITE, "last"), (DuplicatePolicy.SKIP, "first")])
def test_an_id_twice_in_one_write_is_stored_once_the_same_way_on_both_backends(location, policy, kept):
    store = RagQADocumentStore(location, embedding_dim=2)
    store.write_documents([Document(id="b", content="other", embedding=[0.0, 1.0])])
    twice = [Document(id="a", content="first", embedding=[1.0, 0.0]), Document(id="a", content="last", embedding=[0.6, 0.8])]
    assert store.write_documents(twice, policy) == 1
    assert [d.content for d in store.filter_documents({"field": "id", "operator": "==", "value": "a"})] == [kept]
    store.store.flush()
    assert store.store.check() == []  # no vector left behind for the replaced copy
    found = store.embedding_retrieval([1.0, 0.0], top_k=5)
    assert [d.id for d in found] == ["a", "b"] and found[0].content == kept  # top_k is filled, nothing orphaned
    with pytest.raises(DuplicateDocumentError):
        store.write_documents(twice, DuplicatePolicy.FAIL)
    store.close()


def test_span_reader_round_trips_a_whole_fitted_scoring():
    from rag_qa.config import ScoringConfig
    from rag_qa.integrations.haystack import SpanReader

    fitted = ScoringConfig(tau=1.5, retrieval_weight=0.25, retrieval_temperature=0.05, answer_scale=0.7, answer_bias=-1.2, max_answers=3)
    reader = SpanReader(model="some/reader", revision=None, top_k=3, scoring=fitted.to_dict())
    again = SpanReader.from_dict(reader.to_dict())
    assert again.scoring == reader.scoring == fitted and again.model == "some/reader"
    plain = SpanReader(model="some/reader", top_k=2, tau=0.5)  # the scalar settings still work
    assert plain.scoring.tau == 0.5 and SpanReader.from_dict(plain.to_dict()).scoring == plain.scoring
