"""SQuAD 2.0 evaluation with the official script's definitions (normalisation, EM, F1, no-answer
threshold, best thresholds), and reader-only evaluation of our decoding on SQuAD-format files.

Predictions and no-answer probabilities are produced in the official file formats, so the official
`evaluate-v2.0.py` can re-score them.
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag_qa.answer import combine, normalize_answer
from rag_qa.config import ScoringConfig
from rag_qa.indexer import add_documents
from rag_qa.reader import Reader
from rag_qa.records import Document, Passage, QAResult, SearchHit

if TYPE_CHECKING:
    from rag_qa.pipeline import RagQA

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
    has_answer = {q.id: q.has_answer for q in questions}  # the official definition: any gold answer at all
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


def _span_f1(questions: list[SquadQuestion], spans: Mapping[str, str]) -> dict[str, float]:
    """F1 of each question's span against its gold answers (0 for no span, and for any span on an
    unanswerable question)."""
    return {q.id: max(f1_score(g, spans[q.id]) for g in _gold(q)) if spans[q.id] else 0.0 for q in questions}


def threshold_free_metrics(questions: list[SquadQuestion], best_spans: Mapping[str, str], na_probs: Mapping[str, float]) -> dict[str, float]:
    """Quality no choice of threshold can flatter (percentages): the best span's F1 on answerable
    questions when the system must always answer, the F1 of abstaining on everything, and the area
    under the risk-coverage curve (answer the questions in order of confidence; risk = 1 - mean F1
    of the answers given so far, an answer to an unanswerable question scoring 0; lower is better)."""
    f1 = _span_f1(questions, best_spans)
    answerable = [q.id for q in questions if q.has_answer]
    losses = np.array([1.0 - f1[q.id] for q in sorted(questions, key=lambda q: na_probs[q.id])])
    risks = np.cumsum(losses) / np.arange(1, len(losses) + 1)
    return {
        "forced_HasAns_f1": 100.0 * sum(f1[k] for k in answerable) / max(1, len(answerable)),
        "always_abstain_f1": 100.0 * (len(questions) - len(answerable)) / max(1, len(questions)),
        "aurc": 100.0 * float(risks.mean()) if len(risks) else 0.0,
    }


def risk_coverage(
    questions: list[SquadQuestion], best_spans: Mapping[str, str], na_probs: Mapping[str, float], predictions: Mapping[str, str], points: int = 101
) -> dict[str, Any]:
    """The risk-coverage curve as the no-answer threshold moves (questions answered in order of
    increasing no-answer probability), at `points` coverages from 0 to 1: `answer_f1`, the mean F1
    of the answers given (what a user who reads an answer gets), and `overall_f1`, SQuAD F1 over
    all questions (an abstention on an unanswerable question scores 1). `operating_point` is where
    the system's own decisions (`predictions`, "" = abstain) put it. Percentages."""
    f1 = _span_f1(questions, best_spans)
    ordered = sorted(questions, key=lambda q: na_probs[q.id])
    answer_gain = np.concatenate([[0.0], np.cumsum([f1[q.id] for q in ordered])])
    abstain_gain = np.concatenate([[0.0], np.cumsum([0.0 if q.has_answer else 1.0 for q in ordered])])
    n = len(ordered)
    counts = np.unique(np.round(np.linspace(0, n, points)).astype(int))
    return {
        "coverage": (100.0 * counts / max(1, n)).tolist(),
        "answer_f1": [float(100.0 * answer_gain[k] / k) if k else None for k in counts],
        "overall_f1": [float(100.0 * (answer_gain[k] + abstain_gain[n] - abstain_gain[k]) / max(1, n)) for k in counts],
        "operating_point": operating_point(questions, predictions),
    }


def operating_point(questions: list[SquadQuestion], predictions: Mapping[str, str]) -> dict[str, float]:
    """Where decisions put the system: `coverage` (share of questions answered), `answer_f1` (mean
    F1 of the answers given: how often an answer a user reads is right) and SQuAD `overall_f1`."""
    answered = [q for q in questions if predictions[q.id]]
    answered_f1 = _span_f1(answered, predictions)
    right_abstentions = sum(1 for q in questions if not predictions[q.id] and not q.has_answer)
    total = max(1, len(questions))
    return {
        "coverage": 100.0 * len(answered) / total,
        "answer_f1": 100.0 * sum(answered_f1[q.id] for q in answered) / max(1, len(answered)),
        "overall_f1": 100.0 * (sum(answered_f1[q.id] for q in answered) + right_abstentions) / total,
    }


@dataclass
class ReaderEvaluation:
    metrics: dict[str, Any]  # numbers, plus the curves: `reliability` (bins) and `risk_coverage`
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
    readings = read_single_passages(reader, questions, scoring)
    results = [r for _, r in tqdm(readings, total=len(questions), desc="Reading", unit="q", disable=not progress)]
    seconds = time.perf_counter() - started
    predictions, na_probs, best_spans = decisions(questions, results)
    margins = {q.id: r.margin - scoring.tau for q, r in zip(questions, results)}
    return ReaderEvaluation(answer_metrics(questions, results), predictions, na_probs, margins, best_spans, seconds)


def decisions(questions: list[SquadQuestion], results: list[QAResult]) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """(predictions, na_probs, best_spans) in the official formats: the answer given ("" for an
    abstention), the no-answer probability, and the best span whatever the decision."""
    best_spans = {q.id: (r.answers[0].text if r.answers else "") for q, r in zip(questions, results)}
    predictions = {q.id: ("" if r.abstained else best_spans[q.id]) for q, r in zip(questions, results)}
    return predictions, {q.id: r.no_answer_confidence for q, r in zip(questions, results)}, best_spans


def answer_metrics(questions: list[SquadQuestion], results: list[QAResult]) -> dict[str, Any]:
    """Everything about answers and abstentions: the official SQuAD 2.0 metrics, the threshold-free
    ones, the top answer's calibration (`reliability` bins) and the `risk_coverage` curve."""
    predictions, na_probs, best_spans = decisions(questions, results)
    metrics: dict[str, Any] = {**squad_metrics(questions, predictions, na_probs), **threshold_free_metrics(questions, best_spans, na_probs)}
    top = top_answer_reliability(questions, results)
    metrics["top_answer_ece"], metrics["reliability"] = top["ece"], top["bins"]
    metrics["risk_coverage"] = risk_coverage(questions, best_spans, na_probs, predictions)
    return metrics


# ----------------------------------------------------------------------------- corpus-wide (open) QA
def paragraph_source(title: str, paragraph: int) -> str:
    """The source name of a SQuAD paragraph indexed as its own document."""
    return f"squad:{title}#{paragraph}"


def squad_corpus(files: list[str | Path], distractors: list[str | Path] = ()) -> list[Document]:
    """Every paragraph of SQuAD-format files, plus JSONL distractor paragraphs
    ({"title", "paragraph", "text"} per line), as documents."""
    documents: dict[str, Document] = {}
    for file in files:
        for question in load_squad(file):
            source = paragraph_source(question.title, question.paragraph)
            documents.setdefault(source, _document(source, question.context))
    for file in distractors:
        for line in Path(file).read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                source = paragraph_source(row["title"], row["paragraph"])
                documents.setdefault(source, _document(source, row["text"]))
    return list(documents.values())


def index_squad_corpus(qa: RagQA, files: list[str], progress: bool = False) -> int:
    """Index the paragraphs of SQuAD JSON files and JSONL paragraph files (told apart by
    extension) into `qa`'s store; returns the number of passages added."""
    squad_files = [f for f in files if not f.endswith(".jsonl")]
    paragraph_files = [f for f in files if f.endswith(".jsonl")]
    return add_documents(squad_corpus(squad_files, paragraph_files), qa.store, qa.embedder, progress=progress)


def _document(source: str, text: str) -> Document:
    return Document(source=source, text=text, content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest())


def reliability(confidences: list[float], correct: list[bool], bins: int = 10) -> dict[str, Any]:
    """Expected calibration error over equal-width confidence bins (mean |accuracy - confidence|,
    weighted by bin size) and the reliability-diagram data: each bin's range, count, mean
    confidence and accuracy (None for an empty bin)."""
    conf, hit = np.asarray(confidences, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    table, error = [], 0.0
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        confidence = float(conf[mask].mean()) if count else None
        accuracy = float(hit[mask].mean()) if count else None
        if count:
            error += count / conf.size * abs(accuracy - confidence)  # type: ignore[operator]
        table.append({"lower": b / bins, "upper": (b + 1) / bins, "count": count, "confidence": confidence, "accuracy": accuracy})
    return {"ece": float(error), "bins": table}


def expected_calibration_error(confidences: list[float], correct: list[bool], bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    return reliability(confidences, correct, bins)["ece"] if len(confidences) else 0.0


def top_answer_reliability(questions: list[SquadQuestion], results: list[QAResult]) -> dict[str, Any]:
    """Calibration of the top answer's confidence (the probability that it is right, exact
    match), over every question, answered or not: an abstention's best guess has a confidence too."""
    confidences, correct = [], []
    for question, result in zip(questions, results):
        top = result.answers[0] if result.answers else None
        confidences.append(top.confidence if top is not None else 0.0)
        correct.append(top is not None and any(exact_score(g, top.text) for g in question.answers))
    return reliability(confidences, correct) if confidences else {"ece": 0.0, "bins": []}


def evaluate_open(qa: RagQA, questions: list[SquadQuestion], top_k: int | None = None, progress: bool = False) -> dict[str, Any]:
    """End-to-end evaluation over an indexed corpus of SQuAD paragraphs (see `squad_corpus`)."""
    texts = [q.question for q in questions]
    started = time.perf_counter()
    results = qa.ask_many(texts, top_k=top_k, progress=progress)
    seconds = time.perf_counter() - started
    ranked = qa.retriever.retrieve(texts, top_k=max(RECALL_AT))
    metrics: dict[str, Any] = {"questions": len(questions), "questions_per_second": len(questions) / seconds}
    metrics.update(_retrieval_metrics(questions, ranked))
    metrics.update(answer_metrics(questions, results))
    abstained = [r.abstained for r in results]
    unanswerable = [not q.has_answer for q in questions]
    true_abstentions = sum(a and u for a, u in zip(abstained, unanswerable))
    metrics["abstention_precision"] = true_abstentions / max(1, sum(abstained))
    metrics["abstention_recall"] = true_abstentions / max(1, sum(unanswerable))
    answered_right_paragraph = [
        r.answers[0].source == paragraph_source(q.title, q.paragraph)
        for q, r in zip(questions, results)
        if q.has_answer and not r.abstained and r.answers
    ]
    metrics["answers_from_right_paragraph"] = sum(answered_right_paragraph) / max(1, len(answered_right_paragraph))
    metrics["expected_calibration_error"] = outcome_calibration_error(questions, results)
    return metrics


def outcome_calibration_error(questions: list[SquadQuestion], results: list[QAResult]) -> float:
    """ECE of the confidence of what the system said: the top answer's confidence when it
    answered (right = exact match), the no-answer confidence when it abstained (right = the
    question is unanswerable)."""
    confidences, correct = [], []
    for question, result in zip(questions, results):
        if result.abstained or not result.answers:
            confidences.append(result.no_answer_confidence)
            correct.append(not question.has_answer)
        else:
            confidences.append(result.answers[0].confidence)
            correct.append(any(exact_score(g, result.answers[0].text) for g in question.answers))
    return expected_calibration_error(confidences, correct)


RECALL_AT = (1, 5, 10, 20)


def _retrieval_metrics(questions: list[SquadQuestion], ranked: list[list[SearchHit]]) -> dict[str, Any]:
    """Paragraph-level recall@k (and at every k up to the largest, for the curve) and MRR over
    the answerable questions."""
    ranks = []
    for question, hits in zip(questions, ranked):
        if not question.has_answer:
            continue
        wanted = paragraph_source(question.title, question.paragraph)
        ranks.append(next((i for i, h in enumerate(hits, 1) if h.passage.source == wanted), None))
    def recall(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / max(1, len(ranks))

    metrics: dict[str, Any] = {f"recall@{k}": recall(k) for k in RECALL_AT}
    metrics["mrr"] = sum(1.0 / r for r in ranks if r is not None) / max(1, len(ranks))
    metrics["recall_curve"] = [recall(k) for k in range(1, max(RECALL_AT) + 1)]  # recall@1, @2, ...
    return metrics
