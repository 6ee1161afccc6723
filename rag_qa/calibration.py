"""Fitting the answer-scoring parameters on held-out questions: the retrieval weight, the top
answer's calibrated probability (a logistic fit) and the answer threshold on it, saved with the index.

The reader and retriever run once per question; every (weight, threshold) candidate is then scored from
the cached readings, so a grid search costs seconds, not model passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from rag_qa.answer import answer_margin, combine, log_odds, passage_words_found, top_answer_probability
from rag_qa.config import ANSWER_POLICIES, DEFAULT_RETRIEVAL_TEMPERATURE, ScoringConfig
from rag_qa.errors import ConfigError
from rag_qa.evaluate import (
    answer_f1,
    decisions,
    operating_point,
    outcome_calibration_error,
    squad_metrics,
    top_answer_reliability,
)
from rag_qa.reader import PassageReading
from rag_qa.records import QAResult, SearchHit
from rag_qa.squad import SquadQuestion

if TYPE_CHECKING:
    from rag_qa.pipeline import RagQA

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)


@dataclass
class CachedQuestion:
    question: SquadQuestion
    hits: list[SearchHit]
    readings: list[PassageReading]

    @cached_property
    def words_found(self) -> tuple[float, float]:
        """`passage_words_found` over the passages read, plain and by rarity (the same for every scoring)."""
        return passage_words_found(self.question.question, self.hits)

    @cached_property
    def margin(self) -> float:
        """The reader's margin for an answer over "no answer" (without τ)."""
        return answer_margin(self.readings, 0.0)


def hold_out_articles(questions: list[SquadQuestion]) -> tuple[list[SquadQuestion], list[SquadQuestion]]:
    """(fit, report) questions: the last third of the articles (by title, then position; articles
    need no title) is held out whole, so no report question shares a paragraph with the fit."""
    articles = sorted({(q.title, q.article) for q in questions})
    held_out = set(articles[len(articles) * 2 // 3 :]) or set(articles[-1:])
    return [q for q in questions if (q.title, q.article) not in held_out], [q for q in questions if (q.title, q.article) in held_out]


def read_once(qa: RagQA, questions: list[SquadQuestion], progress: bool = False) -> list[CachedQuestion]:
    """Retrieve and read every question once (the expensive part)."""
    found = qa.retrieve_and_read([q.question for q in questions], progress=progress)
    return [CachedQuestion(q, hits, readings) for q, (_, hits, readings) in zip(questions, found)]


def decide(cached: list[CachedQuestion], scoring: ScoringConfig, temperature: float) -> list[QAResult]:
    return [combine(c.question.question, c.hits, c.readings, scoring, temperature) for c in cached]


def metrics_for(cached: list[CachedQuestion], results: list[QAResult]) -> dict[str, float]:
    """Official SQuAD 2.0 metrics of these decisions, where they put the system (`coverage`: % of
    questions answered; `answer_f1`: mean F1 of the answers given) and the calibration error of
    their confidences."""
    questions = [c.question for c in cached]
    predictions, na_probs, _ = decisions(questions, results)
    metrics = squad_metrics(questions, predictions, na_probs)
    point = operating_point(questions, predictions)
    metrics["coverage"], metrics["answer_f1"] = point["coverage"], point["answer_f1"]
    metrics["expected_calibration_error"] = outcome_calibration_error(questions, results)
    metrics["top_answer_ece"] = top_answer_reliability(questions, results)["ece"]
    return metrics


def parse_objective(text: str) -> tuple[str, float | None]:
    """`f1`, `precision:P` or `coverage:C` (P, C in (0, 1]), or `policy:NAME` (an answer policy's
    threshold, the best F1 at it) as (kind, target)."""
    kind, _, target = text.partition(":")
    if kind == "f1" and not target:
        return "f1", None
    if kind == "policy":
        if target not in ANSWER_POLICIES:
            raise ConfigError(f"objective policy:NAME takes one of {', '.join(ANSWER_POLICIES)}, got {text!r}")
        return "policy", ANSWER_POLICIES[target]
    try:
        value = float(target)
    except ValueError:
        value = -1.0
    if kind not in ("precision", "coverage") or not 0 < value <= 1:
        raise ConfigError(f"objective must be f1, precision:P, coverage:C with P, C in (0, 1] (e.g. precision:0.8), or policy:NAME, got {text!r}")
    return kind, value


def choose(candidates: list[tuple[Any, ...]], objective: str) -> tuple[Any, ...]:
    """The (metrics, threshold, weight, ...) candidate that best meets `objective`, with whether it
    met it appended: `f1` the best F1; `policy:NAME` the best F1 at the policy's threshold;
    `precision:P` the most questions answered while the answers' mean F1 stays >= 100·P (else the
    most precise); `coverage:C` the share answered nearest 100·C, then the most precise. Ties go
    to the lower threshold (more answers) and weight near 0.5."""
    kind, target = parse_objective(objective)

    def tie(c: tuple[Any, ...]) -> tuple[float, float]:
        return -abs(c[1]), -abs(c[2] - 0.5)

    if kind == "f1":
        best = max(candidates, key=lambda c: (c[0]["f1"], *tie(c)))
        return (*best, True)
    assert target is not None
    if kind == "policy":
        best = max((c for c in candidates if c[1] == target), key=lambda c: (c[0]["f1"], *tie(c)))
        return (*best, True)
    if kind == "precision":
        meeting = [c for c in candidates if c[0]["answer_f1"] >= 100 * target]
        if meeting:
            return (*max(meeting, key=lambda c: (c[0]["coverage"], c[0]["answer_f1"], *tie(c))), True)
        return (*max(candidates, key=lambda c: (c[0]["answer_f1"], c[0]["coverage"], *tie(c))), False)
    best = max(candidates, key=lambda c: (-abs(c[0]["coverage"] - 100 * target), c[0]["answer_f1"], *tie(c)))
    return (*best, abs(best[0]["coverage"] - 100 * target) <= 5)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> tuple[float, ...]:
    """(scale per column of `x`..., bias) of P(y=1 | x) = sigmoid(x @ scales + bias) by Newton's
    method (ridge-damped); `x` is one feature (a vector) or several (a matrix, one column each)."""
    features = np.column_stack([x, np.ones(len(x))])
    weights = np.zeros(features.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(features @ weights, -30, 30)))
        gradient = features.T @ (p - y) + l2 * weights
        hessian = (features * (p * (1 - p))[:, None]).T @ features + l2 * np.eye(len(weights))
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return tuple(float(w) for w in weights)


def fit_scoring(
    cached: list[CachedQuestion], retrieval_mode: str, max_answers: int = 5, objective: str = "f1", max_answer_tokens: int | None = None
) -> tuple[ScoringConfig, dict[str, Any]]:
    """Three steps, each on its own question: how answers are ranked (the retrieval weight and τ,
    which keeps out the spans of passages whose null score wins) by the F1 of the top answer on the
    answerable questions; the top answer's confidence at that ranking (`calibrate_top_answer`);
    then the answer threshold on that confidence for the operating point `objective` asks for (see
    `choose`). Ranking by answer quality rather than by the objective keeps the ranking from
    bending to one dataset's share of unanswerable questions (and it chose the same ranking on
    SQuAD as on long papers, docs/benchmarks.md section 16). `max_answer_tokens`: the answer cap
    the readings were decoded with, kept with the fit."""
    temperature = DEFAULT_RETRIEVAL_TEMPERATURE[retrieval_mode]
    margins = np.array([c.margin for c in cached])
    finite = margins[np.isfinite(margins)]
    taus = sorted({0.0, *np.round(-np.quantile(finite, np.linspace(0.02, 0.98, 25)), 3).tolist()}) if finite.size else [0.0]
    answerable = np.array([c.question.has_answer for c in cached])
    rankings = []
    for weight in WEIGHTS:
        for tau in taus:
            scoring = ScoringConfig(tau=tau, retrieval_weight=weight, retrieval_temperature=temperature, max_answers=max_answers, answer_threshold=0.0)
            results = decide(cached, scoring, temperature)
            top_f1 = np.array([_top_answer_f1(c.question, r) for c, r in zip(cached, results)])
            forced_f1 = float(top_f1[answerable].mean()) if answerable.any() else 0.0
            rankings.append(((forced_f1, -abs(tau), -abs(weight - 0.5)), scoring, results, top_f1))
    _, scoring, results, top_f1 = max(rankings, key=lambda r: r[0])
    scoring = calibrate_top_answer(cached, results, replace(scoring, max_answer_tokens=max_answer_tokens))
    probabilities = np.array([_top_probability(scoring, c, r) for c, r in zip(cached, results)])
    candidates = [
        (_operating_point(top_f1, answerable, probabilities >= threshold), threshold, scoring.retrieval_weight)
        for threshold in _thresholds(probabilities)
    ]  # fmt: skip
    point, threshold, _, met = choose(candidates, objective)
    unanswerable = (~answerable).astype(float)  # the tau rule's no-answer confidence, for `--tau`
    no_scale, no_bias = fit_logistic(-_finite([c.margin + scoring.tau for c in cached]), unanswerable)
    fitted = replace(scoring, answer_threshold=threshold, no_answer_scale=no_scale, no_answer_bias=no_bias)
    point = {key: float(value) for key, value in point.items()}
    grid = {"weights": list(WEIGHTS), "taus": taus, "thresholds": "the policies' and 25 quantiles of the confidences"}
    return fitted, {"grid": grid, "objective": objective, "objective_met": bool(met), "fit_point": point, "fit_f1": point["f1"]}


def calibrate_top_answer(cached: list[CachedQuestion], results: list[QAResult], scoring: ScoringConfig) -> ScoringConfig:
    """`scoring` with the top answer's confidence fitted (logistic, on its F1 against the gold
    answers: partial overlap counts in part) on five signs of evidence: the answer's ranking
    probability (log-odds), the reader's margin for an answer over "no answer", the share of the
    question's words that the passages read hold, that share weighted by each word's rarity among
    the passages searched, and the answer's passage's retrieval score. Fitted on SQuAD, they rank
    answers better than the ranking probability alone, the confidence stays calibrated on long
    scientific papers, and the rarity-weighted share tells a question about something the
    documents never mention (docs/benchmarks.md sections 16 and 20)."""
    f1 = np.array([_top_answer_f1(c.question, r) for c, r in zip(cached, results)])
    tops = [r.answers[0] if r.answers else None for r in results]
    features = np.column_stack([
        _finite([log_odds(top.score) if top else -math.inf for top in tops]),
        _finite([c.margin for c in cached]),
        [c.words_found[0] if top else 0.0 for c, top in zip(cached, tops)],
        [c.words_found[1] if top else 0.0 for c, top in zip(cached, tops)],
        [top.retrieval_score if top else 0.0 for top in tops],
    ])  # fmt: skip
    answer_scale, margin_scale, words_scale, rare_words_scale, relevance_scale, bias = fit_logistic(features, f1)
    return replace(
        scoring, answer_scale=answer_scale, answer_margin_scale=margin_scale, answer_words_scale=words_scale,
        answer_rare_words_scale=rare_words_scale, answer_relevance_scale=relevance_scale, answer_bias=bias,
    )  # fmt: skip


def _top_probability(scoring: ScoringConfig, cached: CachedQuestion, result: QAResult) -> float:
    top = result.answers[0] if result.answers else None
    if top is None:
        return 0.0
    return top_answer_probability(scoring, top, cached.margin, *cached.words_found)


def _top_answer_f1(question: SquadQuestion, result: QAResult) -> float:
    return answer_f1(question, result.answers[0].text) if result.answers else 0.0


def _operating_point(top_f1: np.ndarray, answerable: np.ndarray, answered: np.ndarray) -> dict[str, float]:
    """SQuAD F1, % answered and the answers' mean F1 when the questions `answered` get their top
    answer and the others an abstention (right on an unanswerable question)."""
    gained = top_f1[answered].sum() + np.count_nonzero(~answered & ~answerable)
    return {
        "f1": 100.0 * gained / max(1, len(top_f1)),
        "coverage": 100.0 * answered.mean() if len(answered) else 0.0,
        "answer_f1": 100.0 * top_f1[answered].mean() if answered.any() else 0.0,
    }


def _thresholds(probabilities: np.ndarray) -> list[float]:
    """Candidate answer thresholds: the policies' and 25 quantiles of the probabilities seen."""
    inner = np.round(np.quantile(probabilities, np.linspace(0.02, 0.98, 25)), 4).tolist() if probabilities.size else []
    return sorted({*ANSWER_POLICIES.values(), *inner})


def fit_answer_cap(readings_by_cap: dict[int, list[CachedQuestion]], retrieval_mode: str, objective: str = "f1") -> tuple[ScoringConfig, dict[str, Any]]:
    """`fit_scoring` at each answer cap (the questions read with it), and the cap whose fit best
    meets `objective` on the fit questions (ties: the shorter cap)."""
    fits = {cap: fit_scoring(cached, retrieval_mode, objective=objective, max_answer_tokens=cap) for cap, cached in sorted(readings_by_cap.items())}
    candidates = [(details["fit_point"], scoring.answer_threshold or 0.0, scoring.retrieval_weight) for scoring, details in fits.values()]
    best = choose(candidates, objective)
    cap = list(fits)[next(i for i, c in enumerate(candidates) if c[0] is best[0])]
    scoring, details = fits[cap]
    return scoring, {**details, "answer_caps": {str(c): d["fit_point"] for c, (_, d) in fits.items()}}


def _finite(margins: list[float]) -> np.ndarray:
    """A fitting feature: a question without any span (-inf) as a very low value."""
    return np.array([m if math.isfinite(m) else -50.0 for m in margins])
