"""Retrieval as the reader reads it: passages widened into their neighbours (no text read twice,
offsets and pages exact) and hybrid hits scored by their similarity to the question."""

from __future__ import annotations

import numpy as np
import pytest

from rag_qa import RagQA
from rag_qa.config import ChunkingConfig, IndexSettings, RetrievalConfig
from rag_qa.indexer import add_documents
from rag_qa.records import Document, Passage, SearchHit
from rag_qa.retrieve import TEXT_MATCH_WEIGHT, DocumentTexts, fuse, widen_hits, widened_range
from rag_qa.store import open_store

TEXT = "One sentence here. Two words and more. Three is the passage text. Four follows now. Five ends."


class Texts(DocumentTexts):
    """Document texts from a dict, as the store would give them."""

    def __init__(self, documents: dict[str, tuple[str, tuple[int, ...]]]):
        self._texts = dict(documents)


def hit(source: str | None, text: str, start: int, end: int, score: float = 1.0, page: int | None = None) -> SearchHit:
    return SearchHit(Passage(f"{source}:{start}", text[start:end], source, start, end, page), score)


def test_a_passage_widens_to_whole_sentences_else_whole_words():
    start, end = TEXT.index("Three"), TEXT.index(" Four")
    low, high = widened_range(TEXT, start, end, 25)
    assert TEXT[low:high] == "Two words and more. Three is the passage text. Four follows now."
    low, high = widened_range(TEXT, start, end, 12)  # no sentence end in the 12 characters after: a whole word
    assert TEXT[low:high] == "Three is the passage text. Four"
    assert widened_range(TEXT, 0, len(TEXT), 50) == (0, len(TEXT))


def test_a_passage_never_widens_into_part_of_a_table_row():
    """A row cut where a cell holds ". " ("Output: . 0") would be read without the cell naming
    it: its meaning answered for the row after. The widened text starts and ends on whole rows."""
    rows = ["Command: \\fdg; Output: ◦ .; Meaning: fraction of a degree", "Command: \\farcm; Output: . 0; Meaning: fraction of an arcminute",
            "Command: \\farcs; Output: 00 .; Meaning: fraction of an arcsecond", "Command: \\fd; Output: d .; Meaning: fraction of a day"]  # fmt: skip
    text = "\n".join(rows)
    start, end = text.index(rows[2]), text.index(rows[2]) + len(rows[2])
    for chars in range(1, 90):
        low, high = widened_range(text, start, end, chars)
        lines = text[low:high].split("\n")
        assert all(line in rows for line in lines), (chars, text[low:high])


def test_widened_passages_keep_exact_offsets_and_pages_and_never_read_text_twice():
    page_starts = (0, TEXT.index("Four"))  # page 2 begins at "Four"
    texts = Texts({"a.pdf": (TEXT, page_starts)})
    first = hit("a.pdf", TEXT, TEXT.index("Two"), TEXT.index(" Three"), page=1)
    overlapping = hit("a.pdf", TEXT, TEXT.index("Three"), TEXT.index(" Four"), page=1)
    inside = hit("a.pdf", TEXT, TEXT.index("words"), TEXT.index(" and"), page=1)
    widened = widen_hits([first, overlapping, inside], texts, 25)
    assert [h.passage.id for h in widened] == [first.passage.id, overlapping.passage.id]  # `inside` was all read above: dropped
    for h in widened:
        p = h.passage
        assert TEXT[p.char_start : p.char_end] == p.text
    (a, b), (c, d) = [(h.passage.char_start, h.passage.char_end) for h in widened]
    assert b <= c or d <= a  # no character read twice
    second = widened[1].passage
    assert second.text.endswith("Four follows now.") and second.page == 1 and second.page_at(second.text.index("Four")) == 2
    assert [h.score for h in widened] == [first.score, overlapping.score]


def test_a_passage_never_reaches_back_onto_the_page_before():
    """It is cited by the page it begins on: widening adds the page's own text before it, the next
    page's after it."""
    page_starts = (0, TEXT.index("Two"), TEXT.index("Four"))  # page 2: "Two ... text."; page 3: "Four ..."
    on_page_2 = hit("a.pdf", TEXT, TEXT.index("Three"), TEXT.index(" Four"), page=2)
    (widened,) = widen_hits([on_page_2], Texts({"a.pdf": (TEXT, page_starts)}), 60)
    passage = widened.passage
    assert passage.char_start == TEXT.index("Two") and passage.page == 2  # not "One sentence here." of page 1
    assert passage.text.endswith("Four follows now. Five ends.") and passage.page_at(passage.text.index("Four")) == 3
    assert widened_range(TEXT, TEXT.index("Three"), TEXT.index(" Four"), 60)[0] == 0  # without the page, it would


def test_a_passage_without_its_document_text_is_read_as_it_is():
    stray = SearchHit(Passage("h1", "A Haystack-written passage."), 0.5)  # no source
    stale = hit("gone.txt", TEXT, 0, 18)  # an index from before the text was kept
    assert widen_hits([stray, stale], Texts({"gone.txt": (None, ())}), 100) == [stray, stale]


@pytest.fixture
def papers(tmp_path, embedder) -> RagQA:
    """Two long documents cut into small passages: one about tides, one about volcanoes."""
    tides = " ".join(f"Tide fact {i}: the moon pulls the sea and the tide rises twice a day near harbour {i}." for i in range(12))
    volcanoes = " ".join(f"Volcano fact {i}: magma rises through the crust and erupts as lava at vent {i}." for i in range(12))
    store = open_store(tmp_path / "index", IndexSettings(chunking=ChunkingConfig(max_tokens=40, overlap_tokens=0)))
    add_documents([Document("tides.txt", tides, "h1"), Document("volcanoes.txt", volcanoes, "h2")], store, embedder)
    return RagQA(store, embedder)


def test_hybrid_hits_are_ranked_by_fusion_and_scored_by_similarity_plus_relative_bm25(papers):
    question = "Why does the tide rise near harbour 7?"
    papers.retriever.config = RetrievalConfig(mode="hybrid", top_k=4, neighbour_chars=0, table_scan_depth=0)
    hybrid = papers.retriever.retrieve([question])[0]
    vector = papers.embedder.embed([question])[0]
    stored = {p.id: v for p, v in papers.store.iter_passages()}
    bm25 = papers.store.search_text(question, 8)  # the BM25 list hybrid fuses (2 x top_k deep)
    text_match = {h.passage.id: h.score / bm25[0].score for h in bm25}
    assert len(hybrid) == 4
    for h in hybrid:  # every hit, found by BM25 alone or not: its cosine plus its BM25 relative to the best
        relative = text_match.get(h.passage.id, bm25[-1].score / bm25[0].score)
        assert h.score == pytest.approx(float(np.dot(stored[h.passage.id], vector)) + TEXT_MATCH_WEIGHT * relative, abs=1e-5)
    assert max(text_match.get(h.passage.id, 0.0) for h in hybrid) == 1.0  # the best BM25 hit is read
    dense_only = {h.passage.id for h in papers.retriever.retrieve([question], 8, mode="dense")[0]}
    assert any(h.passage.id not in dense_only for h in papers.retriever.retrieve([question], 20, mode="hybrid")[0])


def test_hits_carry_each_question_words_rarity_among_the_passages_searched(papers):
    hits = papers.retriever.retrieve(["Why does the tide rise on the moon near harbour 7?"])[0]
    rarity = hits.word_rarity
    assert set(rarity) == {"harbour", "moon", "near", "rise", "tide"}
    assert rarity["rise"] == 0 < rarity["moon"] == rarity["tide"] == rarity["harbour"]  # every passage rises; tides' alone hold the others
    volcano_only = papers.retriever.retrieve(["Why does the tide rise on the moon?"], sources=["volcanoes.txt"])[0].word_rarity
    assert volcano_only["rise"] == 0 < rarity["moon"] < volcano_only["tide"] == volcano_only["moon"]  # counted only where the search may look


def test_the_reader_reads_widened_passages_and_search_shows_them(papers):
    question = "What erupts at vent 5?"
    papers.retriever.config = RetrievalConfig(mode="hybrid", top_k=3, neighbour_chars=0)
    plain = papers.search(question)
    papers.retriever.config = RetrievalConfig(mode="hybrid", top_k=3, neighbour_chars=120)
    wide = papers.search(question)
    assert [h.passage.id for h in wide] == [h.passage.id for h in plain][: len(wide)]
    assert sum(len(h.passage.text) for h in wide) > sum(len(h.passage.text) for h in plain)
    for h in wide:
        text = papers.store.document_text(h.passage.source)
        assert text[h.passage.char_start : h.passage.char_end] == h.passage.text


def test_fusion_weights_let_one_list_count_more():
    a, b, c = (SearchHit(Passage(pid, pid), 0.0) for pid in "abc")
    dense, sparse = [a, b], [c, b]
    assert [h.passage.id for h in fuse([dense, sparse], 3)] == ["b", "a", "c"]  # b is in both lists
    assert [h.passage.id for h in fuse([dense, sparse], 3, weights=(1.0, 3.0))] == ["b", "c", "a"]  # the heavier list's first above the other's
    with pytest.raises(ValueError):
        fuse([dense, sparse], 3, weights=(1.0,))  # a weight for every list


def test_a_table_row_the_question_names_is_read_besides_the_top_passages(tmp_path, embedder):
    """The row holding the answer ranks below passages that talk about the question's words: a
    person scans the table for the row it names. It is read besides the top passages (never
    instead of one), in every mode, and not when table_scan_depth is 0."""
    talk = " ".join(f"Note {i}: the loan fee of the Household membership is set by the board each spring." for i in range(8))
    rows = "\n".join(f"Membership: {name}; Loan fee: {fee}; Deposit: {deposit}" for name, fee, deposit in [("Student", "2.50", "10"), ("Household", "4.00", "25"), ("Business", "9.75", "60")])
    store = open_store(tmp_path / "index", IndexSettings(chunking=ChunkingConfig(max_tokens=40, overlap_tokens=0)))
    add_documents([Document("notes.txt", talk, "h1"), Document("fees.txt", "Membership | Loan fee | Deposit\n" + rows, "h2")], store, embedder)
    qa = RagQA(store, embedder)
    question = "What is the loan fee of the Household membership?"
    for mode in ("hybrid", "dense", "bm25"):
        qa.retriever.config = RetrievalConfig(mode=mode, top_k=1, neighbour_chars=0)
        hits = qa.retriever.retrieve([question])[0]
        assert [h.passage.source for h in hits] == ["notes.txt", "fees.txt"], mode
        assert "Membership: Household; Loan fee: 4.00" in hits[1].passage.text
        qa.retriever.config = RetrievalConfig(mode=mode, top_k=1, neighbour_chars=0, table_scan_depth=0)
        assert [h.passage.source for h in qa.retriever.retrieve([question])[0]] == ["notes.txt"], mode
    qa.retriever.config = RetrievalConfig(top_k=1, neighbour_chars=0)
    assert [h.passage.source for h in qa.retriever.retrieve(["Who sets the loan fee each spring?"])[0]] == ["notes.txt"]  # no row named: nothing added


def test_a_named_table_row_is_scanned_for_at_every_top_k(tmp_path, embedder):
    """Hybrid fuses 2k of each list: with k of 20 or more that is the scan's depth already, and
    the row must still be looked for among ranks k+1 and below (found in review)."""
    talk = " ".join(f"Note {i}: the loan fee of the Household membership is set by the board each spring." for i in range(70))
    store = open_store(tmp_path / "index", IndexSettings(chunking=ChunkingConfig(max_tokens=40, overlap_tokens=0)))
    fees = "Membership | Loan fee\nMembership: Student; Loan fee: 2.50\nMembership: Household; Loan fee: 4.00"
    add_documents([Document("notes.txt", talk, "h1"), Document("fees.txt", fees, "h2")], store, embedder)
    qa = RagQA(store, embedder)
    for top_k in (19, 20, 25):
        qa.retriever.config = RetrievalConfig(top_k=top_k, neighbour_chars=0)
        hits = qa.retriever.retrieve(["What is the loan fee of the Household membership?"])[0]
        assert "fees.txt" in [h.passage.source for h in hits] and len(hits) <= top_k + 1, top_k
