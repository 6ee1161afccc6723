"""Fitting the answer-scoring parameters on held-out questions: the no-answer threshold τ, the
retrieval weight, and the confidence calibration (logistic fits), saved with the index.

The reader and retriever run once per question; every (weight, τ) candidate is then scored from
the cached readings, so a grid search costs seconds, not model passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rag_qa.answer import answer_margin, combine, log_odds
from rag_qa.config import DEFAULT_RETRIEVAL_TEMPERATURE, ScoringConfig
from rag_qa.errors import ConfigError
from rag_qa.evaluate import (
    decisions,
    exact_score,
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
    """`f1`, `precision:P` or `coverage:C` (P, C in (0, 1]) as (kind, target)."""
    kind, _, target = text.partition(":")
    if kind == "f1" and not target:
        return "f1", None
    try:
        value = float(target)
    except ValueError:
        value = -1.0
    if kind not in ("precision", "coverage") or not 0 < value <= 1:
        raise ConfigError(f"objective must be f1, precision:P or coverage:C with P, C in (0, 1] (e.g. precision:0.8), got {text!r}")
    return kind, value


def choose(candidates: list[tuple[dict[str, float], float, float]], objective: str) -> tuple[dict[str, float], float, float, bool]:
    """The (metrics, tau, weight) candidate that best meets `objective`, and whether it met it:
    `f1` the best F1; `precision:P` the most questions answered while the answers' mean F1 stays
    >= 100·P (else the most precise); `coverage:C` the share answered nearest 100·C, then the most
    precise. Ties go to tau near 0 and weight near 0.5."""
    kind, target = parse_objective(objective)

    def tie(c: tuple[dict[str, float], float, float]) -> tuple[float, float]:
        return -abs(c[1]), -abs(c[2] - 0.5)

    if kind == "f1":
        best = max(candidates, key=lambda c: (c[0]["f1"], *tie(c)))
        return (*best, True)
    assert target is not None
    if kind == "precision":
        meeting = [c for c in candidates if c[0]["answer_f1"] >= 100 * target]
        if meeting:
            return (*max(meeting, key=lambda c: (c[0]["coverage"], c[0]["answer_f1"], *tie(c))), True)
        return (*max(candidates, key=lambda c: (c[0]["answer_f1"], c[0]["coverage"], *tie(c))), False)
    best = max(candidates, key=lambda c: (-abs(c[0]["coverage"] - 100 * target), c[0]["answer_f1"], *tie(c)))
    return (*best, abs(best[0]["coverage"] - 100 * target) <= 5)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> tuple[float, float]:
    """(scale, bias) of P(y=1 | x) = sigmoid(scale * x + bias) by Newton's method (ridge-damped)."""
    features = np.column_stack([x, np.ones_like(x)])
    weights = np.zeros(2)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(features @ weights, -30, 30)))
        gradient = features.T @ (p - y) + l2 * weights
        hessian = (features * (p * (1 - p))[:, None]).T @ features + l2 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(weights[0]), float(weights[1])


def fit_scoring(
    cached: list[CachedQuestion], retrieval_mode: str, max_answers: int = 5, objective: str = "f1", max_answer_tokens: int | None = None
) -> tuple[ScoringConfig, dict[str, Any]]:
    """Grid-search (retrieval weight, τ) for the operating point `objective` asks for (see
    `choose`), then calibrate the two confidences. `max_answer_tokens`: the answer cap the
    readings were decoded with, kept with the fit."""
    temperature = DEFAULT_RETRIEVAL_TEMPERATURE[retrieval_mode]
    margins = np.array([answer_margin(c.readings, 0.0) for c in cached])
    finite = margins[np.isfinite(margins)]
    taus = sorted({0.0, *np.round(-np.quantile(finite, np.linspace(0.02, 0.98, 25)), 3).tolist()}) if finite.size else [0.0]
    candidates = []
    for weight in WEIGHTS:
        for tau in taus:
            scoring = ScoringConfig(tau=tau, retrieval_weight=weight, retrieval_temperature=temperature, max_answers=max_answers)
            candidates.append((metrics_for(cached, decide(cached, scoring, temperature)), tau, weight))
    fit, tau, weight, met = choose(candidates, objective)
    scoring = ScoringConfig(tau=tau, retrieval_weight=weight, retrieval_temperature=temperature, max_answers=max_answers, max_answer_tokens=max_answer_tokens)
    results = decide(cached, scoring, temperature)
    answer_right = np.array([_top_answer_right(c.question, r) for c, r in zip(cached, results)], dtype=float)
    unanswerable = np.array([not c.question.has_answer for c in cached], dtype=float)
    answer_scale, answer_bias = fit_logistic(_finite([log_odds(r.answers[0].score) if r.answers else -math.inf for r in results]), answer_right)
    no_scale, no_bias = fit_logistic(-_finite([r.margin for r in results]), unanswerable)  # the decision's margin
    fitted = replace(scoring, answer_scale=answer_scale, answer_bias=answer_bias, no_answer_scale=no_scale, no_answer_bias=no_bias)
    point = {key: fit[key] for key in ("f1", "coverage", "answer_f1")}
    return fitted, {"grid": {"weights": list(WEIGHTS), "taus": taus}, "objective": objective, "objective_met": met, "fit_point": point, "fit_f1": fit["f1"]}


def fit_answer_cap(readings_by_cap: dict[int, list[CachedQuestion]], retrieval_mode: str, objective: str = "f1") -> tuple[ScoringConfig, dict[str, Any]]:
    """`fit_scoring` at each answer cap (the questions read with it), and the cap whose fit best
    meets `objective` on the fit questions (ties: the shorter cap)."""
    fits = {cap: fit_scoring(cached, retrieval_mode, objective=objective, max_answer_tokens=cap) for cap, cached in sorted(readings_by_cap.items())}
    candidates = [(details["fit_point"], scoring.tau, scoring.retrieval_weight) for scoring, details in fits.values()]
    best = choose(candidates, objective)
    cap = list(fits)[next(i for i, c in enumerate(candidates) if c[0] is best[0])]
    scoring, details = fits[cap]
    return scoring, {**details, "answer_caps": {str(c): d["fit_point"] for c, (_, d) in fits.items()}}


def _finite(margins: list[float]) -> np.ndarray:
    """A fitting feature: a question without any span (-inf) as a very low value."""
    return np.array([m if math.isfinite(m) else -50.0 for m in margins])


def _top_answer_right(question: SquadQuestion, result: QAResult) -> bool:
    return bool(question.has_answer and result.answers and any(exact_score(g, result.answers[0].text) for g in question.answers))
