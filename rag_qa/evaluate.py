"""SQuAD 2.0 evaluation with the official script's definitions (normalisation, EM, F1, no-answer
threshold, best thresholds), and reader-only evaluation of our decoding on SQuAD-format files.

Predictions and no-answer probabilities are produced in the official file formats, so the official
`evaluate-v2.0.py` can re-score them.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rag_qa.answer import combine, normalize_answer
from rag_qa.config import ScoringConfig
from rag_qa.indexer import add_documents
from rag_qa.reader import Reader
from rag_qa.records import Passage, QAResult, SearchHit
from rag_qa.squad import SquadQuestion, squad_corpus

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


def score_shapers(questions: list[SquadQuestion], results: list[QAResult], forced_hasans_f1: float) -> dict[str, float]:
    """What shapes F1, so that a user sees why it is what it is (percentages): the share of
    answerable questions, how often the system abstained on one of them, and the F1 of answering
    every question with its best span (the end opposite `always_abstain_f1`)."""
    answerable = [r for q, r in zip(questions, results) if q.has_answer]
    share = len(answerable) / max(1, len(questions))
    return {
        "answerable_share": 100.0 * share,
        "abstained_on_answerable": 100.0 * sum(r.abstained for r in answerable) / max(1, len(answerable)),
        "never_abstain_f1": forced_hasans_f1 * share,  # unanswerable questions, all answered, score 0
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
    metrics = {**answer_metrics(questions, results), **answers_over_cap(questions, reader.tokenizer, reader.config.max_answer_tokens)}
    return ReaderEvaluation(metrics, predictions, na_probs, margins, best_spans, seconds)


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
    metrics.update(score_shapers(questions, results, metrics["forced_HasAns_f1"]))
    top = top_answer_reliability(questions, results)
    metrics["top_answer_ece"], metrics["reliability"] = top["ece"], top["bins"]
    metrics["risk_coverage"] = risk_coverage(questions, best_spans, na_probs, predictions)
    return metrics


# ----------------------------------------------------------------------------- corpus-wide (open) QA
def index_squad_corpus(qa: RagQA, files: list[str], progress: bool = False) -> int:
    """Index the paragraphs of SQuAD JSON files and JSONL paragraph files (told apart by
    extension) into `qa`'s store, which then holds exactly that corpus (SQuAD paragraphs from an
    earlier corpus are removed); returns the number of passages added."""
    squad_files = [f for f in files if not f.endswith(".jsonl")]
    paragraph_files = [f for f in files if f.endswith(".jsonl")]
    documents = squad_corpus(squad_files, paragraph_files)
    names = {d.source for d in documents}
    for stale in [f["source"] for f in qa.store.files() if f["source"].startswith("squad:") and f["source"] not in names]:
        qa.store.delete_source(stale)
    return add_documents(documents, qa.store, qa.embedder, progress=progress)


def reliability(confidences: list[float], correct: list[float] | list[bool], bins: int = 10) -> dict[str, Any]:
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


def answer_f1(question: SquadQuestion, text: str) -> float:
    """The F1 of an answer to `question`: 0 for any answer to an unanswerable one."""
    return max(f1_score(gold, text) for gold in question.answers) if question.has_answer else 0.0


def expected_calibration_error(confidences: list[float], correct: list[float] | list[bool], bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    return reliability(confidences, correct, bins)["ece"] if len(confidences) else 0.0


def top_answer_reliability(questions: list[SquadQuestion], results: list[QAResult]) -> dict[str, Any]:
    """Calibration of the top answer's confidence (its expected F1 against the gold answers: 1
    exactly right, partial overlap in part, 0 on an unanswerable question) over every question,
    answered or not: an abstention's best guess has a confidence too."""
    confidences, correct = [], []
    for question, result in zip(questions, results):
        top = result.answers[0] if result.answers else None
        confidences.append(top.confidence if top is not None else 0.0)
        correct.append(answer_f1(question, top.text) if top is not None else 0.0)
    return reliability(confidences, correct) if confidences else {"ece": 0.0, "bins": []}


def evaluate_open(qa: RagQA, questions: list[SquadQuestion], top_k: int | None = None, progress: bool = False) -> dict[str, Any]:
    """End-to-end evaluation over an indexed corpus of SQuAD paragraphs (see `squad_corpus`).
    The right document is the one whose text is the question's paragraph, the right passage one of
    its passages that holds a gold answer at its offsets: both found by content, never by name.
    Recall@k is over the passages as stored; `read_passage_recall`, over the `top_k` passages as
    the reader reads them (widened into their neighbours)."""
    texts = [q.question for q in questions]
    started = time.perf_counter()
    results = qa.ask_many(texts, top_k=top_k, progress=progress)
    seconds = time.perf_counter() - started
    ranked = qa.retriever.retrieve(texts, top_k=max(RECALL_AT), widen=False)
    content = _content_hashes(qa)
    metrics: dict[str, Any] = {"questions": len(questions), "questions_per_second": len(questions) / seconds}
    metrics.update(_retrieval_metrics(questions, ranked, content))
    read = _retrieval_metrics(questions, qa.retriever.retrieve(texts, top_k=top_k), content)  # the passages as the reader reads them
    metrics["read_passage_recall"] = read["passage_recall_curve"][-1] if read["passage_recall_curve"] else 0.0
    metrics.update(answer_metrics(questions, results))
    metrics.update(answers_over_cap(questions, qa.reader.tokenizer, qa.reader.config.max_answer_tokens))
    abstained = [r.abstained for r in results]
    unanswerable = [not q.has_answer for q in questions]
    true_abstentions = sum(a and u for a, u in zip(abstained, unanswerable))
    metrics["abstention_precision"] = true_abstentions / max(1, sum(abstained))
    metrics["abstention_recall"] = true_abstentions / max(1, sum(unanswerable))
    answered_right_paragraph = [
        content(r.answers[0].source) == q.context_hash for q, r in zip(questions, results) if q.has_answer and not r.abstained and r.answers
    ]
    metrics["answers_from_right_paragraph"] = sum(answered_right_paragraph) / max(1, len(answered_right_paragraph))
    metrics["expected_calibration_error"] = outcome_calibration_error(questions, results)
    return metrics


def _content_hashes(qa: RagQA) -> Callable[[str | None], str | None]:
    """The content hash of an indexed document by its name (looked up once per name)."""
    known: dict[str | None, str | None] = {}

    def content(source: str | None) -> str | None:
        if source not in known:
            known[source] = qa.store.file_hash(source) if source is not None else None
        return known[source]

    return content


def outcome_calibration_error(questions: list[SquadQuestion], results: list[QAResult]) -> float:
    """ECE of the confidence of what the system said: the top answer's confidence when it
    answered (right = its F1), the no-answer confidence when it abstained (right = the question
    is unanswerable)."""
    confidences, correct = [], []
    for question, result in zip(questions, results):
        if result.abstained or not result.answers:
            confidences.append(result.no_answer_confidence)
            correct.append(not question.has_answer)
        else:
            confidences.append(result.answers[0].confidence)
            correct.append(answer_f1(question, result.answers[0].text))
    return expected_calibration_error(confidences, correct)


RECALL_AT = (1, 5, 10, 20)


def _retrieval_metrics(questions: list[SquadQuestion], ranked: list[list[SearchHit]], content: Callable[[str | None], str | None]) -> dict[str, Any]:
    """Recall@k (and at every k up to the largest, for the curves) and MRR over the answerable
    questions, at two grains: the document that is the question's paragraph (`recall@k`, `mrr`),
    and a passage of it whose offsets hold a gold answer (`passage_recall@k`, `passage_mrr`: the
    grain that matters when a document is a whole paper). Content, not names, says which is right."""
    document_ranks, passage_ranks = [], []
    for question, hits in zip(questions, ranked):
        if not question.has_answer:
            continue
        right = [content(h.passage.source) == question.context_hash for h in hits]
        document_ranks.append(next((i for i, ok in enumerate(right, 1) if ok), None))
        spans = question.answer_spans()
        if spans:  # an answer not found at its answer_start cannot be placed in a passage
            holds = [ok and _holds_answer(h.passage, spans) for ok, h in zip(right, hits)]
            passage_ranks.append(next((i for i, ok in enumerate(holds, 1) if ok), None))
    return {**_recall(document_ranks, ""), **_recall(passage_ranks, "passage_"), "passage_recall_questions": len(passage_ranks)}


def _holds_answer(passage: Passage, spans: list[tuple[int, int]]) -> bool:
    end = passage.char_end if passage.char_end is not None else passage.char_start + len(passage.text)
    return any(passage.char_start <= start and stop <= end for start, stop in spans)


def _recall(ranks: list[int | None], prefix: str) -> dict[str, Any]:
    def recall(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / max(1, len(ranks))

    metrics: dict[str, Any] = {f"{prefix}recall@{k}": recall(k) for k in RECALL_AT}
    metrics[f"{prefix}mrr"] = sum(1.0 / r for r in ranks if r is not None) / max(1, len(ranks))
    metrics[f"{prefix}recall_curve"] = [recall(k) for k in range(1, max(RECALL_AT) + 1)]  # recall@1, @2, ...
    return metrics


def answers_over_cap(questions: list[SquadQuestion], tokenizer: Any, max_answer_tokens: int) -> dict[str, Any]:
    """How many answerable questions no answer can match: every gold answer is longer than the
    reader's answer cap (counted in the reader's own tokens, as its windows cut the paragraph)."""
    lengths: dict[str, list[tuple[int, int]]] = {}

    def tokens(question: SquadQuestion, answer: str, start: int | None) -> int:
        if start is None:
            return len(tokenizer(answer, add_special_tokens=False, verbose=False)["input_ids"])
        if question.context not in lengths:
            lengths[question.context] = tokenizer(question.context, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
        stop = start + len(answer)
        return sum(1 for a, b in lengths[question.context] if a < stop and b > start)

    answerable = [q for q in questions if q.has_answer]
    starts = {q.id: q.answer_starts or (None,) * len(q.answers) for q in answerable}
    over = [q for q in answerable if all(tokens(q, a, s) > max_answer_tokens for a, s in zip(q.answers, starts[q.id]))]
    return {"max_answer_tokens": max_answer_tokens, "answers_over_cap": 100.0 * len(over) / max(1, len(answerable))}
