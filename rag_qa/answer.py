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
from rag_qa.records import Answer, QAResult, SearchHit

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
    """Rank the answers of the passages that do not abstain, or abstain when they all do. The top
    answer's confidence is calibrated on its own ranking probability, so it speaks for the answer
    shown (uncalibrated, it is that probability)."""
    margin = answer_margin(readings, config.tau)
    no_answer_confidence = sigmoid(-config.no_answer_scale * margin + config.no_answer_bias) if math.isfinite(margin) else 1.0
    if not hits:
        return QAResult(question, (), True, no_answer_confidence, margin)
    abstained = margin < 0
    log_retrieval = log_softmax([h.score for h in hits], retrieval_temperature)
    candidates = []
    for hit, reading, log_p_passage in zip(hits, readings, log_retrieval, strict=True):  # one reading per hit, in order
        answers_here = reading.best_score - reading.null_score + config.tau >= 0
        if abstained or answers_here:  # when abstaining, keep every passage's spans as best guesses
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
    p_top = sigmoid(config.answer_scale * log_odds(kept[0].score) + config.answer_bias) if kept else 0.0
    confidences = answer_confidences(p_top, [a.score for a in kept]) if kept else []
    answers = tuple(replace(a, confidence=c) for a, c in zip(kept, confidences))
    return QAResult(question, answers, abstained, no_answer_confidence, margin)


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
