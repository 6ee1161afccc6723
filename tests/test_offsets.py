"""The offset invariant, property-tested: whatever the text (tabs, NBSP, CRLF, lone CR, control
characters, combining marks that NFC merges, hyphenated line breaks, emoji, RTL, CJK), every
passage and every answer quotes the document at its offsets: `source_text[start:end] == text`,
with no whitespace at either edge. Run with the tiny random RoBERTa (byte-level BPE, the default
reader's tokenizer family) and a tiny random BERT (WordPiece): their spans are random, which is
what exercises every offset."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_qa.answer import combine
from rag_qa.config import ChunkingConfig, IngestConfig, ReaderConfig, ScoringConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.chunking import chunk_document
from rag_qa.ingest.loaders import load_document
from rag_qa.ingest.pdf import GuardedPdfReader
from rag_qa.ingest.text import clean_mapped, clean_text, kept_hyphens
from rag_qa.reader import Reader
from rag_qa.records import SearchHit

PIECES = [
    "word", "Tool", "library", "opened", "in", "2019", ".", ",", "?", " ", " ", "  ", "\t", "\xa0", "\u3000", "\n", "\n\n",
    "\r\n", "\r", "\x00", "\x07", "\x0c", "\u200b", "\ufeff", "e\u0301", "n\u0303o", "A\u030a", "co-\noperation", "co-operation", "hyphen-\n",
    "🔧", "🎉👍🏽", "👨‍👩‍👧", "مرحبا", "שלום", "東京は日本の首都です。", "한국어", "café", "Ørsted", "10km", "- item", "1. step",
    "“quoted”", "€5", "\u202e", "x",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=120).map("".join)
# A text file with NUL bytes is refused as binary (tested in test_text.py); documents here have none.
file_texts = st.lists(st.sampled_from([p for p in PIECES if p != "\x00"]), min_size=1, max_size=120).map("".join)


@given(texts, st.booleans())
@settings(max_examples=400, deadline=None)
def test_cleaning_maps_every_character_back(text: str, join_lines: bool) -> None:
    hyphens = kept_hyphens(text)
    mapped = clean_mapped(text, join_lines, hyphens)
    assert mapped.text == clean_text(text, join_lines, hyphens)
    assert len(mapped.starts) == len(mapped.ends) == len(mapped.text)
    assert all(0 <= a < b <= len(text) for a, b in zip(mapped.starts, mapped.ends))
    assert list(mapped.starts) == sorted(mapped.starts) and list(mapped.ends) == sorted(mapped.ends)
    for i, char in enumerate(mapped.text):
        if not char.isspace():  # a visible cleaned character comes from the same visible text
            assert unicodedata.normalize("NFC", text[mapped.starts[i] : mapped.ends[i]]).find(char) >= 0 or char == "-"


@pytest.fixture(scope="module", params=["roberta", "bert"])
def reader(request: pytest.FixtureRequest) -> Reader:
    model = request.getfixturevalue(f"tiny_{request.param}")
    loaded = Reader(ReaderConfig(model=model, max_seq_len=64, doc_stride=16, max_query_tokens=16, max_answer_tokens=12, top_spans=5))
    loaded.warm_up()
    return loaded


@pytest.fixture(scope="module")
def pdf_reader():
    with GuardedPdfReader(timeout_s=30) as guarded:
        yield guarded


@given(body=file_texts, question=texts)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_passage_and_answer_quotes_the_decoded_file(reader, embedder, pdf_reader, tmp_path: Path, body: str, question: str) -> None:
    path = tmp_path / "random.txt"
    path.write_bytes(body.encode("utf-8"))
    try:
        document = load_document(str(path), IngestConfig(), pdf_reader)
    except LoadError as exc:  # only a document of nothing but whitespace may be refused
        assert "no text content" in str(exc) and not body.lstrip("\ufeff").strip()
        return
    assert document.text == path.read_bytes().decode("utf-8-sig")  # the decoded file (a UTF-8 BOM is not text)
    passages = chunk_document(document, embedder.tokenizer, ChunkingConfig(max_tokens=24, overlap_tokens=4))
    for passage in passages:
        assert document.text[passage.char_start : passage.char_end] == passage.text
        assert passage.text == passage.text.strip()
    if not passages:
        return
    readings = reader.read([question], [[p.text for p in passages]])[0]
    hits = [SearchHit(p, 1.0 / (i + 1)) for i, p in enumerate(passages)]
    for passage, reading in zip(passages, readings):
        for span in reading.spans:
            assert passage.text[span.start : span.end] == span.text and span.text == span.text.strip() and span.text
    result = combine(question, hits, readings, ScoringConfig(max_answers=20), 0.1)
    for answer in result.answers:
        assert document.text[answer.start : answer.end] == answer.text == answer.text.strip()
