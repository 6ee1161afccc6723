"""`passage_word_counts` on both stores (the FAISS + SQLite folder and a real PostgreSQL server):
how many passages hold each word (what the retriever weighs a question's words by), matched as
full-text search matches them, and with `sources` counted among those sources' passages alone:
a word that only a hidden document holds counts 0, and on SQLite the work does not depend on
what the hidden passages hold."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import with_sqlite_steps

from rag_qa.config import IndexSettings, VectorIndexConfig
from rag_qa.records import Document, Passage
from rag_qa.store import open_store

DIM = 16
TEXTS = {
    "lib": ["The library opened in 1900.", "Two libraries were founded later."],
    "park": ["The park was founded by a library board.", "Ducks swim in the pond."],
    "secret": ["A zebra hides on the moon.", "The zebra library of secrets."],
}
WORDS = ["library", "libraries", "founded", "zebra", "ZEBRA", "moon", "unicorn", "!!", "", "park_pond"]


def files(texts: dict[str, list[str]]) -> list[tuple[Document, list[Passage]]]:
    return [
        (Document(source, " ".join(parts), "h", ()), [Passage(f"{source}-{i}", text, source, i, i + 1) for i, text in enumerate(parts)])
        for source, parts in texts.items()
    ]


def vectors(n: int) -> np.ndarray:
    v = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def new_store(location, texts=TEXTS):
    store = open_store(location, IndexSettings(vector_index=VectorIndexConfig(index_type="flat")), dimension=DIM)
    store.replace_files(files(texts), vectors(sum(map(len, texts.values()))))
    return store


@pytest.fixture(params=["faiss", "postgresql"])
def location(request, tmp_path):
    """Where a fresh index goes: a folder, or a new schema on the session's PostgreSQL server."""
    if request.param == "faiss":
        return str(tmp_path / "ix")
    return request.getfixturevalue("postgres_url")


def test_counts_the_passages_holding_each_word_as_full_text_search_matches_it(location):
    """Stems match ("libraries" holds where "library" does, "founded"/"Founded" alike); a word of
    punctuation or nothing is held nowhere; a word of two parts where either is; each count is
    the number of passages `search_text` finds for the word. A read-only handle counts the same."""
    store = new_store(location)
    assert store.passage_word_counts(WORDS) == (6, [4, 4, 2, 2, 2, 1, 0, 0, 0, 2])
    assert store.passage_word_counts(("moon",)) == (6, [1]) and store.passage_word_counts([]) == (6, [])
    for sources in (None, ["lib"], ["lib", "park"], ["secret"]):
        _, counts = store.passage_word_counts(WORDS, sources)
        assert counts == [len(store.search_text(word, 100, sources)) for word in WORDS]
    store.close()
    with open_store(location, read_only=True) as reader:
        assert reader.passage_word_counts(WORDS) == (6, [4, 4, 2, 2, 2, 1, 0, 0, 0, 2])
        assert reader.passage_word_counts(["zebra", "library"], ["lib"]) == (2, [0, 2])


def test_stop_words_count_as_each_store_searches_them(location):
    """FTS5 ('porter unicode61') keeps "the"; PostgreSQL's 'english' configuration drops it, so no
    passage holds it there (its full-text search finds none either)."""
    store = new_store(location)
    held = 0 if location.startswith("postgres") else 5
    assert store.passage_word_counts(["the"]) == (6, [held])
    assert len(store.search_text("the", 100)) == held
    store.close()


def test_with_sources_only_their_passages_count(location):
    """N is the passages of those sources; a word that only a hidden document holds ("zebra",
    "moon") counts 0 (no leak of what the hidden document says); an unknown source or none at all
    gives nothing."""
    store = new_store(location)
    assert store.passage_word_counts(WORDS, ["lib"]) == (2, [2, 2, 1, 0, 0, 0, 0, 0, 0, 0])
    assert store.passage_word_counts(WORDS, ["lib", "park"]) == (4, [3, 3, 2, 0, 0, 0, 0, 0, 0, 2])
    assert store.passage_word_counts(["zebra", "moon", "library"], ["secret"]) == (2, [2, 1, 1])
    assert store.passage_word_counts(["zebra", "library"], ["lib"]) == (2, [0, 2])  # again: the readable words kept
    assert store.passage_word_counts(["zebra", "library"], []) == (0, [0, 0])
    assert store.passage_word_counts(["zebra", "library"], ["nope"]) == (0, [0, 0])
    assert store.passage_word_counts([], ["lib"]) == (2, [])
    store.close()


def test_counts_follow_replaced_and_deleted_files(location):
    store = new_store(location)
    store.replace_files(files({"secret": ["Nothing to see here."]}), vectors(1))
    assert store.passage_word_counts(["zebra", "library"]) == (5, [0, 3])
    assert store.passage_word_counts(["zebra", "library"], ["secret"]) == (1, [0, 0])
    store.delete_source("lib")
    assert store.passage_word_counts(["zebra", "library", "founded"]) == (3, [0, 1, 1])
    store.close()


def test_filtered_counts_do_the_same_work_whatever_hidden_passages_hold(tmp_path):
    """A key must not learn from the cost of counting whether hidden documents use a word: over two
    SQLite indexes alike but for one word of the hidden passages, the filtered counts run the same
    number of SQLite VM instructions (a progress handler: work, not time) and give the same counts,
    cold (the readable words gathered) and warm (kept from the call before)."""

    def build(path, hidden_word):
        texts = {f"open{i}": [f"open passage {j} about a {'ladder' if j == 0 else 'shed'}" for j in range(4)] for i in range(4)}
        texts |= {f"hidden{i}": [f"a {hidden_word} {hidden_word} in hidden file {i}"] * 4 for i in range(8)}
        return new_store(str(path), texts), [f"open{i}" for i in range(4)]

    def counted(store, sources):
        return with_sqlite_steps(store, lambda: store.passage_word_counts(["ladder", "shed", "pencil", "hidden", "ladder_pencil"], sources))

    without, readable = build(tmp_path / "without", "pencil")
    with_word, _ = build(tmp_path / "with", "ladder")
    for _ in ("cold", "warm"):
        assert counted(without, readable) == counted(with_word, readable)
    assert counted(without, readable)[0] == (16, [4, 12, 0, 0, 4])
    assert without.passage_word_counts(["ladder", "pencil"]) == (48, [4, 32]) and with_word.passage_word_counts(["ladder", "pencil"]) == (48, [36, 0])
    without.close()
    with_word.close()


def test_a_word_longer_than_the_tokenizer_keeps_is_counted_like_any(location):
    """FTS5 cuts a very long token inside a UTF-8 character; counting it (unfiltered and filtered,
    as every question's words are) neither fails nor misses the passage that holds it."""
    long_word = "東京" * 300
    store = new_store(location, {"tokyo": [f"{long_word} is one long word.", "Nothing else."], **TEXTS})
    assert store.passage_word_counts([long_word, "library"]) == (8, [1, 4])
    assert store.passage_word_counts([long_word], ["tokyo"]) == (2, [1])
    assert store.passage_word_counts([long_word], ["lib"]) == (2, [0])
    store.close()
