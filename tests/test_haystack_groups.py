"""Access groups through Haystack (issue 34, item 12), on both backends: a retriever built for some
groups can be narrowed at run time, never widened; the embedding retriever keeps groups too, inside
the store's search; passages written through the document store belong to no file, so a retriever
limited by groups does not see them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from haystack import Document

from rag_qa.config import ChunkingConfig, IndexSettings, VectorIndexConfig
from rag_qa.errors import ConfigError
from rag_qa.indexer import add_documents
from rag_qa.integrations.haystack import PassageRetriever, RagQADocumentStore, RagQAEmbeddingRetriever
from rag_qa.naming import UnknownSourceError
from rag_qa.records import Document as StoredDocument
from rag_qa.records import Passage
from rag_qa.store import open_store

SETTINGS = IndexSettings(chunking=ChunkingConfig(max_tokens=24, overlap_tokens=4), vector_index=VectorIndexConfig(index_type="flat"))
FILES = {  # name: groups
    "/kb/public.txt": (),
    "/kb/hr.txt": ("hr",),
    "/kb/legal.txt": ("legal",),
    "/kb/hr-legal.txt": ("hr", "legal"),
    "/kb/legal-ops.txt": ("legal", "ops"),
}


def readable_by(*limits: list[str] | None) -> set[str]:
    """The files a holder of each of `limits` may read (None: no limit)."""
    return {name for name, groups in FILES.items() if all(g is None or not groups or set(groups) & set(g) for g in limits)}


@pytest.fixture(params=["faiss", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "index") if request.param == "faiss" else request.getfixturevalue("postgres_url")


def stored(source: str, groups: tuple[str, ...]) -> tuple[StoredDocument, list[Passage]]:
    text = f"the shed opens at nine, says {source}"
    return StoredDocument(source, text, "h", (), groups or None), [Passage(Passage.make_id(source, 0, text), text, source, 0, len(text))]


LIMITS = [(None, None), (["hr"], None), (None, ["legal"]), (["hr"], ["legal"]), (["hr"], ["hr"]), (["hr", "legal"], ["hr", "ops"]), ([], None), (["legal"], [])]


def test_embedding_retriever_reads_only_what_its_groups_and_the_runs_groups_both_may(location: str) -> None:
    store = RagQADocumentStore(location, embedding_dim=len(FILES) + 1)
    vectors = np.ones((len(FILES), len(FILES) + 1), dtype=np.float32)
    store.store.replace_files([stored(name, groups) for name, groups in FILES.items()], vectors)
    store.write_documents([Document(id="loose", content="written through Haystack", embedding=[1.0] * (len(FILES) + 1))])
    query = [1.0] * (len(FILES) + 1)
    try:
        for built, asked in LIMITS:
            found = RagQAEmbeddingRetriever(store, top_k=20, groups=built).run(query, groups=asked)["documents"]
            sources = {d.meta.get("source") for d in found}
            expected = readable_by(built, asked) | ({None} if built is None and asked is None else set())
            assert sources == expected, (built, asked)  # a limited retriever never sees passages of no file
        only_public = {"field": "meta.source", "operator": "==", "value": "/kb/public.txt"}
        found = RagQAEmbeddingRetriever(store, top_k=20, groups=["hr"], filters=only_public).run(query)["documents"]
        assert [d.meta["source"] for d in found] == ["/kb/public.txt"]  # filters and groups both hold
        retriever = RagQAEmbeddingRetriever(store, top_k=3, groups=["hr"])
        again = RagQAEmbeddingRetriever.from_dict(retriever.to_dict())
        assert again.groups == ["hr"] and {d.meta["source"] for d in again.run(query, top_k=20)["documents"]} == readable_by(["hr"])
        again.document_store.close()
        with pytest.raises(ConfigError, match="group name"):
            RagQAEmbeddingRetriever(store, groups=["no spaces"])
    finally:
        store.close()


def test_passage_retriever_run_groups_narrow_the_constructors_never_widen(location: str, embedder) -> None:
    store = open_store(location, SETTINGS)
    add_documents([stored(name, groups)[0] for name, groups in FILES.items()], store, embedder)
    store.close()
    for built, asked in LIMITS:
        found = PassageRetriever(location, top_k=20, groups=built).run("When does the shed open?", groups=asked)["documents"]
        assert {d.meta["source"] for d in found} == readable_by(built, asked), (built, asked)
    hr = PassageRetriever(location, top_k=20, groups=["hr"])
    with pytest.raises(UnknownSourceError):
        hr.run("When does the shed open?", sources=["/kb/legal.txt"], groups=["legal"])  # as if it were not indexed
    with pytest.raises(UnknownSourceError):
        hr.run("When does the shed open?", sources=["/kb/hr.txt"], groups=["legal"])
    found = hr.run("When does the shed open?", sources=["/kb/*.txt"], groups=["legal"])["documents"]
    assert {d.meta["source"] for d in found} == {"/kb/public.txt", "/kb/hr-legal.txt"}
