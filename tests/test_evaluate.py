"""SQuAD 2.0 metrics against hand-computed cases, official file formats, calibration fitting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag_qa.calibration import choose, fit_logistic, parse_objective
from rag_qa.errors import ConfigError
from rag_qa.evaluate import (
    risk_coverage,
    exact_score,
    expected_calibration_error,
    f1_score,
    normalize_answer,
    squad_metrics,
    threshold_free_metrics,
)
from rag_qa.squad import SquadQuestion, load_squad


def q(qid: str, *answers: str) -> SquadQuestion:
    return SquadQuestion(qid, "?", "context", answers, "T", 0)


def test_normalisation_exact_and_f1_by_hand():
    assert normalize_answer("The  Eiffel-Tower, in PARIS!") == "eiffeltower in paris"
    assert exact_score("the Eiffel Tower", "Eiffel tower.") == 1
    assert f1_score("the cat sat on the mat", "cat on a mat") == pytest.approx(2 * 1.0 * 0.75 / 1.75)  # P=3/3, R=3/4
    assert f1_score("", "") == 1.0 and f1_score("", "something") == 0.0
    assert f1_score("alpha", "beta") == 0.0


def test_threshold_free_metrics_by_hand():
    questions = [q("a", "Paris"), q("b"), q("c", "blue sky")]
    best_spans = {"a": "Paris", "b": "anything", "c": "sky"}  # F1 1, 0 (unanswerable), 2/3
    na_probs = {"a": 0.1, "b": 0.5, "c": 0.9}  # answered in the order a, b, c
    m = threshold_free_metrics(questions, best_spans, na_probs)
    assert m["forced_HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert m["always_abstain_f1"] == pytest.approx(100 / 3)
    # losses 0, 1, 1/3 -> risk at coverage 1/3, 2/3, 1: 0, 1/2, 4/9
    assert m["aurc"] == pytest.approx(100 * (0 + 1 / 2 + 4 / 9) / 3)
    confident_in_the_wrong_order = threshold_free_metrics(questions, best_spans, {"a": 0.9, "b": 0.1, "c": 0.5})
    assert confident_in_the_wrong_order["aurc"] > m["aurc"]


def test_risk_coverage_by_hand():
    questions = [q("a", "Paris"), q("b"), q("c", "blue sky")]
    best_spans = {"a": "Paris", "b": "anything", "c": "sky"}  # F1 1, 0 (unanswerable), 2/3
    na_probs = {"a": 0.1, "b": 0.5, "c": 0.9}  # answered in the order a, b, c as the threshold rises
    curve = risk_coverage(questions, best_spans, na_probs, {"a": "Paris", "b": "", "c": ""}, points=4)
    assert curve["coverage"] == pytest.approx([0, 100 / 3, 200 / 3, 100])
    assert curve["answer_f1"][0] is None and curve["answer_f1"][1:] == pytest.approx([100, 50, 100 * (5 / 3) / 3])
    # overall: abstaining on b is right until b is answered
    assert curve["overall_f1"] == pytest.approx([100 / 3, 200 / 3, 100 / 3, 100 * (5 / 3) / 3])
    assert curve["operating_point"] == pytest.approx({"coverage": 100 / 3, "answer_f1": 100, "overall_f1": 200 / 3})


def test_objectives_choose_the_operating_point():
    def point(f1, coverage, answer_f1, tau):
        return {"f1": f1, "coverage": coverage, "answer_f1": answer_f1}, tau, 0.5

    candidates = [point(60, 10, 90, 3.0), point(55, 40, 82, 1.0), point(50, 55, 75, 0.0), point(40, 90, 50, -2.0)]
    assert choose(candidates, "f1")[1] == 3.0
    assert choose(candidates, "precision:0.8")[1:] == (1.0, 0.5, True)  # the most coverage at answer F1 >= 80
    assert choose(candidates, "precision:0.95")[1:] == (3.0, 0.5, False)  # unreachable: the most precise, said so
    assert choose(candidates, "coverage:0.5")[1] == 0.0
    assert parse_objective("coverage:0.5") == ("coverage", 0.5) and parse_objective("f1") == ("f1", None)
    for bad in ("precision", "precision:80", "coverage:0", "recall:0.5", "f1:1"):
        with pytest.raises(ConfigError, match="objective must be"):
            parse_objective(bad)


def test_squad_metrics_by_hand():
    questions = [q("a", "Paris", "the city of Paris"), q("b", "42"), q("c"), q("d")]
    predictions = {"a": "city of Paris", "b": "41", "c": "", "d": "something"}
    na_probs = {"a": 0.1, "b": 0.2, "c": 0.9, "d": 0.6}
    m = squad_metrics(questions, predictions, na_probs)
    # a: EM 1 (matches "the city of Paris"), b: 0, c: correct no-answer 1, d: wrong answer 0
    assert m["exact"] == pytest.approx(50.0) and m["f1"] == pytest.approx(50.0)
    assert m["HasAns_exact"] == 50.0 and m["NoAns_exact"] == 50.0 and m["total"] == 4
    # best threshold: answer a (na 0.1) and abstain on the rest -> 3 of 4 right; b adds nothing, so 0.1 stays
    assert m["best_exact"] == pytest.approx(75.0) and m["best_exact_thresh"] == pytest.approx(0.1)
    strict = squad_metrics(questions, predictions, na_probs, na_prob_threshold=0.5)
    assert strict["exact"] == pytest.approx(75.0)  # c and d count as abstentions


def test_official_file_formats(tmp_path):
    data = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}], "is_impossible": False},
        {"id": "q2", "question": "Who?", "answers": [], "is_impossible": True}]}]}]}  # fmt: skip
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(data))
    questions = load_squad(path)
    assert [(x.id, x.has_answer, x.paragraph) for x in questions] == [("q1", True, 0), ("q2", False, 0)]
    assert squad_metrics(questions, {"q1": "France", "q2": ""})["exact"] == 100.0


def test_expected_calibration_error_by_hand():
    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([0.95, 0.95, 0.05, 0.05], [False, False, True, True]) == pytest.approx(0.95)
    assert expected_calibration_error([], []) == 0.0


def test_logistic_fit_recovers_parameters():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(1.5 * x - 0.5)))).astype(float)
    scale, bias = fit_logistic(x, y)
    assert scale == pytest.approx(1.5, abs=0.1) and bias == pytest.approx(-0.5, abs=0.1)


def test_metrics_equal_the_hand_computed_expected_file():
    """Official SQuAD 2.0 definitions worked out by hand (see `_how` in the file), including a
    question whose only gold answer normalises to nothing: it still has an answer."""
    from pathlib import Path

    folder = Path(__file__).parent / "data" / "squad_metrics"
    expected = json.loads((folder / "expected.json").read_text())
    expected.pop("_how")
    questions = load_squad(folder / "dev.json")
    metrics = squad_metrics(questions, json.loads((folder / "predictions.json").read_text()), json.loads((folder / "na_probs.json").read_text()))
    assert set(metrics) == set(expected)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value), key


def test_what_shaped_the_score_by_hand():
    """Two answerable questions (one answered right, one abstained on with a wrong best guess)
    and one unanswerable (abstained): 2/3 answerable, half of them abstained on, and answering
    everything with the best span would score (1 + 0 + 0) / 3."""
    from rag_qa.evaluate import answer_metrics
    from rag_qa.records import Answer, Passage, QAResult

    def result(text: str | None, abstained: bool) -> QAResult:
        answers = (Answer(text, 0.0, 0.5, "s", None, 0, len(text), Passage("p", text), 1.0),) if text else ()
        return QAResult("?", answers, abstained, 0.5, 0.0)

    questions = [q("a", "Paris"), q("b", "Lyon"), q("c")]
    metrics = answer_metrics(questions, [result("Paris", False), result("Nice", True), result(None, True)])
    assert metrics["answerable_share"] == pytest.approx(200 / 3) and metrics["abstained_on_answerable"] == 50.0
    assert metrics["forced_HasAns_f1"] == 50.0 and metrics["never_abstain_f1"] == pytest.approx(100 / 3)
    assert metrics["always_abstain_f1"] == pytest.approx(100 / 3) and metrics["f1"] == pytest.approx(200 / 3)
