"""Haystack's own DocumentStore test suite against our FaissDocumentStore (real FAISS + SQLite)."""

from __future__ import annotations

import pytest
from haystack import Document, Pipeline
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.testing.document_store import DocumentStoreBaseExtendedTests

from rag_qa.errors import IndexMismatchError
from rag_qa.integrations.haystack import FaissDocumentStore, FaissEmbeddingRetriever


class TestFaissDocumentStore(DocumentStoreBaseExtendedTests):
    @pytest.fixture
    def document_store(self, tmp_path):
        store = FaissDocumentStore(str(tmp_path / "index"), embedding_dim=768)
        yield store
        store.close()

    def test_write_documents(self, document_store):
        """Default policy is FAIL, and a failed batch writes nothing."""
        docs = [Document(id="1", content="one")]
        assert document_store.write_documents(docs) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([Document(id="2", content="two"), Document(id="1", content="again")])
        assert document_store.filter_documents() == docs


def test_documents_survive_reopening_and_keep_exact_embeddings(tmp_path):
    path = str(tmp_path / "index")
    docs = [Document(content=f"doc {i}", meta={"i": i}, embedding=[0.1 * i, 0.5, -0.25]) for i in range(5)]
    store = FaissDocumentStore(path, embedding_dim=3)
    store.write_documents(docs)
    store.close()
    reopened = FaissDocumentStore(path)
    assert reopened.filter_documents() == docs
    assert reopened.store.check() == []
    reopened.close()


def test_other_dimension_is_a_clear_error(tmp_path):
    path = str(tmp_path / "index")
    FaissDocumentStore(path, embedding_dim=3).close()
    with pytest.raises(IndexMismatchError, match="3-dimensional"):
        FaissDocumentStore(path, embedding_dim=768)
    store = FaissDocumentStore(path)
    with pytest.raises(IndexMismatchError):
        store.write_documents([Document(content="x", embedding=[1.0, 0.0])])
    store.close()


def test_retriever_in_a_pipeline_returns_nearest_with_filters(tmp_path):
    store = FaissDocumentStore(str(tmp_path / "index"), embedding_dim=2)
    store.write_documents(
        [
            Document(id="east", content="east", meta={"lang": "en"}, embedding=[1.0, 0.0]),
            Document(id="north", content="north", meta={"lang": "en"}, embedding=[0.0, 1.0]),
            Document(id="nord", content="nord", meta={"lang": "de"}, embedding=[0.1, 0.99]),
        ]
    )
    pipeline = Pipeline()
    pipeline.add_component("retriever", FaissEmbeddingRetriever(store, top_k=2))
    result = pipeline.run({"retriever": {"query_embedding": [0.0, 1.0]}})
    assert [d.id for d in result["retriever"]["documents"]] == ["north", "nord"]
    assert result["retriever"]["documents"][0].score == pytest.approx(1.0)
    only_en = {"field": "meta.lang", "operator": "==", "value": "en"}
    result = pipeline.run({"retriever": {"query_embedding": [0.0, 1.0], "filters": only_en}})
    assert [d.id for d in result["retriever"]["documents"]] == ["north", "east"]
    store.close()


def test_store_and_retriever_round_trip_to_dict(tmp_path):
    store = FaissDocumentStore(str(tmp_path / "index"), embedding_dim=4)
    retriever = FaissEmbeddingRetriever(store, top_k=3)
    again = FaissEmbeddingRetriever.from_dict(retriever.to_dict())
    assert again.top_k == 3 and again.document_store.path == store.path
    assert again.document_store.to_dict() == store.to_dict()
    again.document_store.close()
    store.close()


def test_skip_policy_counts_only_new(tmp_path):
    store = FaissDocumentStore(str(tmp_path / "index"))
    assert store.write_documents([Document(id="a", content="a")], DuplicatePolicy.SKIP) == 1
    assert store.write_documents([Document(id="a", content="a"), Document(id="b", content="b")], DuplicatePolicy.SKIP) == 1
    assert store.count_documents() == 2
    store.close()
