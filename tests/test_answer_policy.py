"""Answer policies: answer or abstain by the top answer's calibrated confidence (its expected F1),
whose meaning is the same on every corpus; the evidence it is fitted on; the fit that sets it."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import numpy as np
import pytest

from rag_qa.answer import combine, sigmoid, top_answer_probability
from rag_qa.calibration import CachedQuestion, fit_scoring, parse_objective
from rag_qa.config import ANSWER_POLICIES, ScoringConfig, with_answer_policy
from rag_qa.errors import ConfigError
from rag_qa.reader import PassageReading, Span
from rag_qa.records import Hits, Passage, SearchHit
from rag_qa.squad import SquadQuestion
from rag_qa.words import question_words_found

from helpers import cli_env

PASSAGE = Passage("p", "The Household membership costs 60 dollars a year.", "handbook.md", 0)


def reading(score: float, null: float, log_prob: float) -> PassageReading:
    start = PASSAGE.text.index("60")
    return PassageReading(null, (Span(start, start + len("60 dollars a year"), "60 dollars a year", score, log_prob),))


def ask(question: str, read: PassageReading, scoring: ScoringConfig):
    return combine(question, [SearchHit(PASSAGE, 0.5)], [read], scoring, 0.05)


def test_a_policy_answers_exactly_when_the_calibrated_confidence_reaches_its_threshold():
    question = "How much does the Household membership cost?"
    fitted = ScoringConfig(retrieval_weight=0.0, answer_scale=1.0, answer_margin_scale=0.5, answer_bias=-1.0, answer_threshold=0.0)
    read = reading(4.0, 6.0, math.log(0.3))  # the reader prefers "no answer" by 2: the tau rule abstains
    p = ask(question, read, fitted).answers[0].confidence
    assert p == pytest.approx(sigmoid(math.log(0.3 / 0.7) + 0.5 * -2.0 - 1.0))
    for threshold in (p - 1e-6, p + 1e-6):
        result = ask(question, read, with_threshold(fitted, threshold))
        assert result.abstained == (p < threshold)
        assert result.no_answer_confidence == pytest.approx(1 - p)  # that the best answer found is wrong
        assert result.answers[0].text == "60 dollars a year"  # kept as the best guess when abstaining
    tau_rule = ask(question, read, ScoringConfig(retrieval_weight=0.0, tau=0.0))
    assert tau_rule.abstained and not ask(question, read, with_answer_policy(fitted, "eager")).abstained


def with_threshold(scoring: ScoringConfig, threshold: float) -> ScoringConfig:
    from dataclasses import replace

    return replace(scoring, answer_threshold=threshold)


def test_a_question_about_what_the_passages_never_mention_gets_less_confidence():
    assert question_words_found("How much does the Household membership cost?", [PASSAGE.text]) == 1.0
    assert question_words_found("How much does the membership cost on the moon?", [PASSAGE.text]) == pytest.approx(2 / 3)
    assert question_words_found("Who is taking the charged drills?", ["She takes a drill to charge."]) == 1.0  # inflections match
    assert question_words_found("What is it?", ["anything"]) == 1.0  # no content words: no evidence either way
    fitted = ScoringConfig(retrieval_weight=0.0, answer_words_scale=3.0, answer_bias=-2.0, answer_threshold=0.7)
    read = reading(8.0, 2.0, math.log(0.6))
    about = ask("How much does the Household membership cost?", read, fitted)
    moon = ask("How much does the Household membership cost on the moon?", read, fitted)
    assert moon.answers[0].confidence < about.answers[0].confidence
    assert moon.abstained and not about.abstained


def test_a_missing_rare_word_weighs_more_than_a_missing_common_one():
    question = "How much does the Household membership cost on the moon?"
    rare_moon = {"household": 0.5, "membership": 0.5, "cost": 1.0, "moon": 3.0}
    assert question_words_found(question, [PASSAGE.text], rare_moon) == pytest.approx(2 / 5)  # held 0.5 + 0.5 + 1.0 of 5.0
    assert question_words_found(question, [PASSAGE.text]) == pytest.approx(3 / 4)
    assert question_words_found("Who held every cost?", ["no"], {"held": 0.0, "every": 0.0, "cost": 0.0}) == 1.0  # words in every passage: no evidence
    fitted = ScoringConfig(retrieval_weight=0.0, answer_rare_words_scale=3.0, answer_bias=-2.0, answer_threshold=0.5)
    read = reading(8.0, 2.0, math.log(0.6))
    common_moon = combine(question, Hits([SearchHit(PASSAGE, 0.5)], {**rare_moon, "moon": 0.1}), [read], fitted, 0.05)
    rare = combine(question, Hits([SearchHit(PASSAGE, 0.5)], rare_moon), [read], fitted, 0.05)
    assert rare.answers[0].confidence < common_moon.answers[0].confidence
    assert rare.abstained and not common_moon.abstained


def test_a_passage_without_any_span_means_no_answer_with_certainty():
    result = combine("q?", [SearchHit(PASSAGE, 0.1)], [PassageReading(3.0, ())], ScoringConfig(answer_threshold=0.0), 0.05)
    assert result.abstained and result.no_answer_confidence == 1.0 and result.answers == ()


def test_policies_are_named_thresholds_and_unknown_ones_are_refused():
    assert ANSWER_POLICIES["careful"] > ANSWER_POLICIES["balanced"] > ANSWER_POLICIES["eager"] == 0.0
    assert with_answer_policy(ScoringConfig(), "careful").answer_threshold == ANSWER_POLICIES["careful"]
    with pytest.raises(ConfigError, match="careful, balanced, eager"):
        with_answer_policy(ScoringConfig(), "reckless")
    assert parse_objective("policy:balanced") == ("policy", ANSWER_POLICIES["balanced"])
    with pytest.raises(ConfigError):
        parse_objective("policy:reckless")
    assert ScoringConfig.from_dict({"tau": 1.0}).answer_threshold is None  # a fit saved before policies keeps the tau rule
    top = ask("q", reading(1.0, 0.0, -1.0), ScoringConfig(retrieval_weight=0.0)).answers[0]
    assert top_answer_probability(ScoringConfig(), top, 1.0, 1.0) == pytest.approx(math.exp(-1.0))  # uncalibrated: its own probability


@pytest.mark.parametrize("command", [["ask"], ["serve"], ["eval", "open"]])
def test_every_command_that_answers_takes_a_policy(command):
    ran = subprocess.run([sys.executable, "-m", "rag_qa.cli", *command, "--help"], capture_output=True, text=True, env=cli_env())
    assert ran.returncode == 0 and "--answer-policy" in ran.stdout and all(name in ran.stdout for name in ANSWER_POLICIES)


def test_the_cli_refuses_tau_and_a_policy_together(tmp_path):
    ran = subprocess.run(
        [sys.executable, "-m", "rag_qa.cli", "ask", "q?", "--index", str(tmp_path / "none"), "--tau", "0", "--answer-policy", "eager"],
        capture_output=True, text=True, env=cli_env(),
    )  # fmt: skip
    assert ran.returncode != 0 and "--tau" in ran.stderr and "--answer-policy" in ran.stderr


def synthetic_questions(n: int, seed: int = 0) -> list[CachedQuestion]:
    """Questions whose reader margin says how likely the span is right: the gold answer is the
    span for a question drawn right with probability sigmoid(margin - 1), else another text."""
    rng = random.Random(seed)
    cached = []
    for i in range(n):
        margin = rng.uniform(-4, 6)
        right = rng.random() < 1 / (1 + math.exp(-(margin - 1)))
        answerable = right or rng.random() < 0.5
        gold = ("60 dollars a year",) if right else (("twelve euros",) if answerable else ())
        question = SquadQuestion(f"q{i}", "How much does the Household membership cost?", PASSAGE.text, gold, "t", 0, i % 3)
        cached.append(CachedQuestion(question, [SearchHit(PASSAGE, 0.5)], [reading(5.0 + margin, 5.0, math.log(0.5))]))
    return cached


def test_calibrate_fits_a_confidence_that_matches_the_f1_it_gets_and_the_policys_threshold():
    cached = synthetic_questions(400)
    scoring, details = fit_scoring(cached, "dense", objective="policy:balanced")
    assert scoring.answer_threshold == ANSWER_POLICIES["balanced"] and details["objective_met"]
    assert scoring.answer_margin_scale > 0  # the margin is the evidence here
    results = [combine(c.question.question, c.hits, c.readings, scoring, 0.05) for c in cached]
    confidence = np.array([r.answers[0].confidence for r in results])
    f1 = np.array([float(c.question.answers == ("60 dollars a year",)) for c in cached])
    assert abs(confidence.mean() - f1.mean()) < 0.02  # calibrated on average
    high = confidence > 0.7
    assert abs(confidence[high].mean() - f1[high].mean()) < 0.1  # and where it is high
    assert all(r.abstained == (r.answers[0].confidence < scoring.answer_threshold) for r in results)
    f1_fit, _ = fit_scoring(cached, "dense", objective="f1")
    assert f1_fit.answer_threshold is not None and 0 <= f1_fit.answer_threshold <= 1
