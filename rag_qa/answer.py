"""Turning retrieval hits and reader output into ranked answers or an abstention (DESIGN §3).

With one passage, `retrieval_weight = 0` and `tau = 0` the decision is exactly the SQuAD 2.0 rule:
answer with the best span unless the null score beats it.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from rag_qa.config import ScoringConfig
from rag_qa.reader import PassageReading, Span
from rag_qa.records import Answer, Hits, QAResult, SearchHit
from rag_qa.table_lookup import best_cell, in_table_row
from rag_qa.words import question_words_found

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def log_softmax(values: Sequence[float], temperature: float) -> np.ndarray:
    scaled = np.asarray(values, dtype=np.float64) / temperature
    top = scaled.max()
    return scaled - (top + np.log(np.exp(scaled - top).sum()))


def answer_margin(readings: Sequence[PassageReading], tau: float) -> float:
    """max over passages of (best span - null) + tau: the system answers when this is >= 0."""
    return max((r.best_score - r.null_score for r in readings), default=float("-inf")) + tau


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace (the official SQuAD
    definition): two answers that normalise alike are the same answer."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


@dataclass(frozen=True)
class Candidate:
    """A span of a passage that may be the answer, with its ranking score."""

    score: float  # log P(span | passage) + retrieval_weight * log P(passage | question)
    hit: SearchHit
    span: Span


def log_odds(log_p: float) -> float:
    """log(p / (1 - p)) of a log-probability, p kept inside (0, 1): the calibration needs a finite input."""
    p = min(max(math.exp(min(log_p, 0.0)), 1e-12), 1.0 - 1e-12)
    return math.log(p) - math.log1p(-p)


def _overlaps(a: Answer, b: Answer) -> bool:
    return a.source == b.source and (a.source is not None or a.passage.id == b.passage.id) and a.start < b.end and b.start < a.end


def combine(
    question: str,
    hits: Sequence[SearchHit],
    readings: Sequence[PassageReading],
    config: ScoringConfig,
    retrieval_temperature: float,
) -> QAResult:
    """Rank the answers of the passages that do not abstain (every passage's when they all do),
    then answer or abstain: with an answer threshold (a policy), by the top answer's calibrated
    probability of being right; else by the tau rule (abstain when every passage does). The top
    answer's confidence is calibrated on its ranking probability and the reader's margin, so it
    speaks for the answer shown."""
    margin = answer_margin(readings, config.tau)
    if not hits:
        return QAResult(question, (), True, 1.0, margin)
    reader_abstains = margin < 0  # every passage's null beats its best span by more than tau
    kept = _ranked_answers(hits, readings, config, retrieval_temperature, every_passage=reader_abstains)
    kept = _table_cell_first(question, hits, readings, kept, config, retrieval_temperature)
    words_found = passage_words_found(question, hits) if kept else (0.0, 0.0)
    p_top = top_answer_probability(config, kept[0], margin - config.tau, *words_found) if kept else 0.0
    if config.answer_threshold is None:  # the tau rule
        abstained = reader_abstains
        no_answer_confidence = sigmoid(-config.no_answer_scale * margin + config.no_answer_bias) if math.isfinite(margin) else 1.0
    else:
        abstained = not kept or p_top < config.answer_threshold
        no_answer_confidence = 1.0 - p_top
    confidences = answer_confidences(p_top, [a.score for a in kept]) if kept else []
    answers = tuple(replace(a, confidence=c) for a, c in zip(kept, confidences))
    return QAResult(question, answers, abstained, no_answer_confidence, margin)


def passage_words_found(question: str, hits: Sequence[SearchHit]) -> tuple[float, float]:
    """The share of the question's content words that the passages read hold, plain and weighted
    by each word's rarity among the passages searched (`Hits.word_rarity`; the plain share when
    the hits do not say)."""
    texts = [h.passage.text for h in hits]
    plain = question_words_found(question, texts)
    rarity = hits.word_rarity if isinstance(hits, Hits) else None
    return plain, (question_words_found(question, texts, rarity) if rarity else plain)


def top_answer_probability(config: ScoringConfig, answer: Answer, margin: float, words_found: float, rare_words_found: float | None = None) -> float:
    """The calibrated expected F1 of the top answer (its probability of being right, partial
    overlap counting in part), from five signs of evidence: the answer's ranking probability, the
    reader's margin for an answer over "no answer" (-inf: no span anywhere), the share of the
    question's words that the passages read hold, that share weighted by the words' rarity (None:
    the plain share), and how well its passage matches the question."""
    margin_term = config.answer_margin_scale * margin if math.isfinite(margin) else -50.0 * abs(config.answer_margin_scale)
    evidence = (
        config.answer_scale * log_odds(answer.score)
        + margin_term
        + config.answer_words_scale * words_found
        + config.answer_rare_words_scale * (words_found if rare_words_found is None else rare_words_found)
        + config.answer_relevance_scale * answer.retrieval_score
    )
    return sigmoid(evidence + config.answer_bias)


def _ranked_answers(
    hits: Sequence[SearchHit], readings: Sequence[PassageReading], config: ScoringConfig, retrieval_temperature: float, every_passage: bool
) -> list[Answer]:
    """The best `max_answers` answers, best first, from every passage or only from the passages
    whose best span beats their null score by tau (a passage whose null wins adds noise)."""
    log_retrieval = log_softmax([h.score for h in hits], retrieval_temperature)
    candidates = []
    for hit, reading, log_p_passage in zip(hits, readings, log_retrieval, strict=True):  # one reading per hit, in order
        if every_passage or reading.best_score - reading.null_score + config.tau >= 0:
            for span in reading.spans:
                candidates.append(Candidate(span.log_prob + config.retrieval_weight * float(log_p_passage), hit, span))
    # Each answer is shown once: overlapping places (windows or passages that share text) and the same
    # text (normalised) found in several places keep the higher-ranked one. Their scores are not
    # pooled: summing the evidence of equal answers measured no better (docs/benchmarks.md).
    kept: list[Answer] = []
    kept_texts: set[str] = set()
    for candidate in sorted(candidates, key=lambda c: -c.score):
        if len(kept) == config.max_answers:
            break
        passage, span = candidate.hit.passage, candidate.span
        text = normalize_answer(span.text) or span.text
        start, end = passage.char_start + span.start, passage.char_start + span.end
        answer = Answer(span.text, candidate.score, 0.0, passage.source, passage.page_at(span.start), start, end, passage, candidate.hit.score)
        if text not in kept_texts and not any(_overlaps(answer, other) for other in kept):
            kept.append(answer)
            kept_texts.add(text)
    return kept


READER_SURE_LOG_PROB = math.log(0.1)  # a top answer ranked at least this likely is not overruled by a row named without its column
UNRANKED_CELL_LOG_PROB = -20.0  # a table cell the reader kept no span for, in a passage where it kept none at all


def _table_cell_first(
    question: str, hits: Sequence[SearchHit], readings: Sequence[PassageReading], kept: list[Answer], config: ScoringConfig, retrieval_temperature: float
) -> list[Answer]:  # fmt: skip
    """`kept` with the table cell a person would read (`table_lookup.best_cell`) first, when the
    question names both its row and its column; or names its row, and holds more words of it than
    of any other row read, while the reader's own top answer is unsure (below
    READER_SURE_LOG_PROB: "What is lent with every kayak?" is answered from the notes, not from
    the kayak's deposit); or when the reader's own top answer is in a table row anyway (it reads
    a row's cells less well than a person). Scored like a span: the reader's log-probability of
    the cell, or at most its lowest kept span's when it kept none for the cell."""
    cell = best_cell(question, [h.passage.text for h in hits], [{(s.start, s.end): s.log_prob for s in r.spans} for r in readings])
    if cell is None:
        return kept
    top_in_row = bool(kept) and in_table_row(kept[0].passage.text, kept[0].start - kept[0].passage.char_start)
    reader_unsure = not kept or kept[0].score < READER_SURE_LOG_PROB
    if not (cell.strong or top_in_row or (cell.names_best_row and reader_unsure)):
        return kept
    hit, reading = hits[cell.passage], readings[cell.passage]
    log_p_passage = float(log_softmax([h.score for h in hits], retrieval_temperature)[cell.passage])
    log_prob = cell.reader_log_prob
    if log_prob is None:
        log_prob = min((s.log_prob for s in reading.spans), default=UNRANKED_CELL_LOG_PROB)
    passage, text = hit.passage, hit.passage.text[cell.start : cell.end]
    answer = Answer(
        text, log_prob + config.retrieval_weight * log_p_passage, 0.0, passage.source, passage.page_at(cell.start),
        passage.char_start + cell.start, passage.char_start + cell.end, passage, hit.score,
    )  # fmt: skip
    shown = normalize_answer(text) or text
    others = [a for a in kept if not _overlaps(a, answer) and (normalize_answer(a.text) or a.text) != shown]
    return [answer, *others][: config.max_answers]


def answer_confidences(p_top: float, scores: Sequence[float]) -> list[float]:
    """Confidences of ranked answers (scores best first) when the top answer's calibrated
    probability of being right is `p_top`: the top answer gets exactly `p_top`. A lower answer can
    only be right where those above it are wrong, so it gets at most what they leave of 1, and at
    most `p_top` scaled by its probability relative to the top answer's. A near tie therefore
    never splits the top answer's confidence, lower answers are never inflated, and the
    confidences never sum past 1."""
    confidences = [p_top]
    for score in scores[1:]:
        left = max(0.0, 1.0 - sum(confidences))
        confidences.append(min(p_top * math.exp(min(score - scores[0], 0.0)), left))
    return confidences
