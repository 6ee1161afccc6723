"""Reading less, deciding the same (`rag_qa.cascade`): when a question's first passage settles it,
reading the others would not have changed the top answer or the decision to answer."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from rag_qa.answer import combine
from rag_qa.cascade import UNREAD, read_in_stages, settled
from rag_qa.config import ScoringConfig
from rag_qa.ingest.tables import FIELD_SEPARATOR
from rag_qa.reader import PassageReading, Span
from rag_qa.records import Passage, SearchHit

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
TAU_RULE = ScoringConfig(retrieval_weight=0.5)
THRESHOLD_RULE = ScoringConfig(retrieval_weight=0.5, answer_scale=1.0, answer_margin_scale=0.3, answer_words_scale=0.5, answer_bias=-0.5, answer_threshold=0.1)
TEMPERATURE = 0.05


def passage(i: int, text: str) -> Passage:
    return Passage(f"p{i}", text, f"doc{i}.md", 0)


def span_of(text: str, word: int, score: float, log_prob: float) -> Span:
    start = text.index(WORDS[word])
    return Span(start, start + len(WORDS[word]), WORDS[word], score, log_prob)


@st.composite
def asked(draw):  # noqa: ANN001, ANN201
    """Up to five passages with retrieval scores, each read into up to three spans (log-probabilities <= 0)."""
    count = draw(st.integers(1, 5))
    text = " ".join(WORDS)
    hits = [SearchHit(passage(i, text), draw(st.floats(0.0, 1.0))) for i in range(count)]
    hits.sort(key=lambda h: -h.score)
    readings = []
    for _ in range(count):
        words = draw(st.lists(st.integers(0, len(WORDS) - 1), min_size=0, max_size=3, unique=True))
        spans = [span_of(text, w, draw(st.floats(-5, 15)), draw(st.floats(-12, 0))) for w in words]
        spans.sort(key=lambda s: -s.score)
        readings.append(PassageReading(draw(st.floats(-5, 15)), tuple(spans)))
    return hits, readings


@settings(max_examples=400, deadline=None)
@given(asked(), st.sampled_from([TAU_RULE, THRESHOLD_RULE]))
def test_a_question_its_first_passage_settles_gets_the_same_top_answer_and_decision(case, scoring):
    hits, readings = case
    question = "Which word is alpha echo?"
    if not settled(question, hits, readings[0], scoring, TEMPERATURE):
        return
    every = combine(question, hits, readings, scoring, TEMPERATURE)
    first_only = combine(question, hits, [readings[0]] + [UNREAD] * (len(hits) - 1), scoring, TEMPERATURE)
    assert every.abstained == first_only.abstained
    assert len(hits) == 1 or not every.abstained  # with others to read, only an answer settles
    if every.answers:
        assert every.answers[0].text == first_only.answers[0].text
        assert every.answers[0].passage.id == first_only.answers[0].passage.id


def strong_first_case(texts: list[str]) -> tuple[list[SearchHit], list[PassageReading]]:
    """The first passage retrieved well ahead of the others, and read as answering surely."""
    hits = [SearchHit(passage(i, text), score) for i, (text, score) in enumerate(zip(texts, (0.9, 0.5, 0.4)))]
    readings = [PassageReading(0.0, (span_of(text, 1, 10.0, math.log(0.9)),)) for text in texts]
    return hits, readings


def test_the_other_passages_are_read_only_for_questions_their_first_does_not_settle():
    text = " ".join(WORDS)
    sure_hits, sure = strong_first_case([text, text, text])
    unsure_hits = [SearchHit(passage(i, text), 0.5) for i in range(3)]
    unsure = [PassageReading(8.0, (span_of(text, 2, 1.0, math.log(0.2)),)) for _ in range(3)]  # null wins: abstains
    given_readings = {"sure?": sure, "unsure?": unsure}
    calls: list[list[list[str]]] = []

    def read(questions: list[str], passages: list[list[str]]) -> list[list[PassageReading]]:
        calls.append(passages)
        out = []
        for question, texts in zip(questions, passages):
            first = len(texts) == 1 and len(calls) == 1
            out.append(given_readings[question][:1] if first else given_readings[question][1:])
        return out

    readings, unread = read_in_stages(read, ["sure?", "unsure?"], [sure_hits, unsure_hits], TAU_RULE, TEMPERATURE)
    assert [len(p) for p in calls[0]] == [1, 1]  # every question's first passage, in one batch
    assert [len(p) for p in calls[1]] == [2]  # then the others of the unsettled question only
    assert readings[0][1:] == [UNREAD, UNREAD] and readings[1] == unsure
    assert unread == 2


def test_a_table_among_the_passages_is_read_in_full():
    text = " ".join(WORDS)
    table = f"Fee{FIELD_SEPARATOR}Amount\nalpha bravo{FIELD_SEPARATOR}charlie delta echo foxtrot"
    hits, readings = strong_first_case([text, text, text])
    assert settled("Which word is bravo?", hits, readings[0], TAU_RULE, TEMPERATURE)
    with_table = [hits[0], hits[1], SearchHit(passage(2, table), 0.4)]
    assert not settled("Which word is bravo?", with_table, readings[0], TAU_RULE, TEMPERATURE)


def test_a_question_with_a_table_reads_its_passages_together_in_one_pass():
    """The reader decides which table rows may answer over all of a question's passages at once."""
    text = " ".join(WORDS)
    table = f"Fee{FIELD_SEPARATOR}Amount\nalpha bravo{FIELD_SEPARATOR}charlie delta echo foxtrot"
    hits = [SearchHit(passage(0, text), 0.9), SearchHit(passage(1, table), 0.4)]
    calls: list[list[list[str]]] = []

    def read(questions: list[str], passages: list[list[str]]) -> list[list[PassageReading]]:
        calls.append(passages)
        return [[PassageReading(0.0, ()) for _ in texts] for texts in passages]

    readings, unread = read_in_stages(read, ["Which fee?"], [hits], TAU_RULE, TEMPERATURE)
    assert calls[0] == [[text, table]] and all(not p for p in calls[1:]) and unread == 0
    assert len(readings[0]) == 2 and all(r is not UNREAD for r in readings[0])


def test_a_passage_that_could_still_outrank_the_first_answer_is_read():
    text = " ".join(WORDS)
    hits, readings = strong_first_case([text, text, text])
    close = [hits[0], SearchHit(hits[1].passage, 0.9), hits[2]]  # retrieved as well as the first: could win
    assert not settled("Which word is bravo?", close, readings[0], TAU_RULE, TEMPERATURE)
