"""SQuAD 2.0 evaluation with the official script's definitions (normalisation, EM, F1, no-answer
threshold, best thresholds), and reader-only evaluation of our decoding on SQuAD-format files.

Predictions and no-answer probabilities are produced in the official file formats, so the official
`evaluate-v2.0.py` can re-score them.
"""

from __future__ import annotations

import collections
import json
import re
import string
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_qa.answer import combine
from rag_qa.config import ScoringConfig
from rag_qa.reader import Reader
from rag_qa.records import Passage, QAResult, SearchHit

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace (official definition)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_score(gold: str, predicted: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(predicted))


def f1_score(gold: str, predicted: str) -> float:
    gold_tokens = normalize_answer(gold).split()
    predicted_tokens = normalize_answer(predicted).split()
    if not gold_tokens or not predicted_tokens:
        return float(gold_tokens == predicted_tokens)
    same = sum((collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]  # gold texts; empty for unanswerable questions
    title: str
    paragraph: int

    @property
    def has_answer(self) -> bool:
        return bool(self.answers)


def load_squad(path: str | Path) -> list[SquadQuestion]:
    """Every question of a SQuAD 1.1/2.0 file, with its paragraph."""
    data = json.loads(Path(path).read_text("utf-8"))["data"]
    return [
        SquadQuestion(
            qa["id"],
            qa["question"],
            paragraph["context"],
            tuple(a["text"] for a in qa.get("answers", [])),
            article.get("title", ""),
            index,
        )
        for article in data
        for index, paragraph in enumerate(article["paragraphs"])
        for qa in paragraph["qas"]
    ]


def _gold(question: SquadQuestion) -> list[str]:
    return [a for a in question.answers if normalize_answer(a)] or [""]


def squad_metrics(
    questions: list[SquadQuestion], predictions: Mapping[str, str], na_probs: Mapping[str, float] | None = None,
    na_prob_threshold: float = 1.0,
) -> dict[str, float]:  # fmt: skip
    """The official SQuAD 2.0 metrics dictionary (percentages), including best thresholds."""
    na_probs = na_probs if na_probs is not None else {q.id: 0.0 for q in questions}
    has_answer = {q.id: any(normalize_answer(a) for a in q.answers) for q in questions}
    exact_raw = {q.id: max(exact_score(g, predictions[q.id]) for g in _gold(q)) for q in questions}
    f1_raw = {q.id: max(f1_score(g, predictions[q.id]) for g in _gold(q)) for q in questions}

    def thresholded(raw: dict[str, float]) -> dict[str, float]:
        return {k: float(not has_answer[k]) if na_probs[k] > na_prob_threshold else v for k, v in raw.items()}

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)

    def summary(ids: list[str], prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}exact": 100.0 * sum(exact[k] for k in ids) / len(ids),
            f"{prefix}f1": 100.0 * sum(f1[k] for k in ids) / len(ids),
            f"{prefix}total": len(ids),
        }

    result = summary(list(exact))
    answerable = [k for k, v in has_answer.items() if v]
    unanswerable = [k for k, v in has_answer.items() if not v]
    if answerable:
        result.update(summary(answerable, "HasAns_"))
    if unanswerable:
        result.update(summary(unanswerable, "NoAns_"))
    for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
        best, threshold = _best_threshold(predictions, raw, na_probs, has_answer)
        result[f"best_{name}"], result[f"best_{name}_thresh"] = best, threshold
    return result


def _best_threshold(predictions: Mapping[str, str], raw: dict[str, float], na_probs: Mapping[str, float], has_answer: dict[str, bool]) -> tuple[float, float]:
    """Best score over no-answer thresholds, walking questions by increasing na_prob (official)."""
    score = best = sum(1 for k in raw if not has_answer[k])
    threshold = 0.0
    for qid in sorted(raw, key=lambda k: na_probs[k]):
        if has_answer[qid]:
            score += raw[qid]
        elif predictions[qid]:
            score -= 1
        if score > best:
            best, threshold = score, na_probs[qid]
    return 100.0 * best / len(raw), threshold


@dataclass
class ReaderEvaluation:
    metrics: dict[str, float]
    predictions: dict[str, str]  # official format: "" means no answer
    na_probs: dict[str, float]  # official format: higher means "no answer" more likely
    margins: dict[str, float]  # best span - null per question (for fitting tau)
    best_spans: dict[str, str]  # the best non-null span per question, whatever the decision
    seconds: float


def read_single_passages(reader: Reader, questions: list[SquadQuestion], scoring: ScoringConfig, batch: int = 32) -> Iterator[tuple[SquadQuestion, QAResult]]:
    """Each question against its own paragraph only (reader-only SQuAD mode)."""
    for first in range(0, len(questions), batch):
        chunk = questions[first : first + batch]
        readings = reader.read([q.question for q in chunk], [[q.context] for q in chunk])
        for question, reading in zip(chunk, readings):
            hit = SearchHit(Passage(question.id, question.context), 0.0)
            yield question, combine(question.question, [hit], reading, scoring, 1.0)


def evaluate_reader(reader: Reader, questions: list[SquadQuestion], scoring: ScoringConfig, progress: bool = False) -> ReaderEvaluation:
    """Reader-only SQuAD 2.0 evaluation with our decoding (retrieval plays no part)."""
    from tqdm import tqdm

    reader.warm_up()
    started = time.perf_counter()
    predictions, na_probs, margins, best_spans = {}, {}, {}, {}
    results = read_single_passages(reader, questions, scoring)
    for question, result in tqdm(results, total=len(questions), desc="Reading", unit="q", disable=not progress):
        guess = result.answers[0].text if result.answers else ""
        best_spans[question.id] = guess
        predictions[question.id] = "" if result.abstained else guess
        na_probs[question.id] = result.no_answer_confidence
        margins[question.id] = result.margin - scoring.tau
    seconds = time.perf_counter() - started
    return ReaderEvaluation(squad_metrics(questions, predictions, na_probs), predictions, na_probs, margins, best_spans, seconds)
