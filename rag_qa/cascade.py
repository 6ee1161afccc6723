"""Read less, decide the same: a question's best-retrieved passage is read first, and the others
only when they could still change what is shown.

An answer's score is log P(span | passage) + retrieval_weight * log P(passage | question), and a
span's log-probability is at most 0, so a passage not yet read can score at most
retrieval_weight * log P(passage | question). When the first passage answers by itself (its best
span beats its null score) and the question is answered from it, and every other passage's most is
below that answer's score, reading them cannot change the top answer: they cannot outrank it, and
they can only widen the reader's margin for an answer, which never turns an answer into an
abstention (with a fitted answer threshold, only while the margin's weight in the top answer's
probability is not negative). Tables are the exception: a question naming a row and
a column can put a cell of any passage first (`table_lookup`), so a question with a table row
among its passages reads them all, together.

What reading less changes: the answers after the first (those of passages not read are missing)
and the top answer's confidence where an unread passage would have widened the margin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rag_qa.answer import combine, log_softmax
from rag_qa.config import ScoringConfig
from rag_qa.ingest.tables import FIELD_SEPARATOR
from rag_qa.reader import PassageReading
from rag_qa.records import SearchHit

UNREAD = PassageReading(null_score=0.0, spans=())  # a passage not read: no span, so it answers nothing
Read = Callable[[list[str], list[list[str]]], list[list[PassageReading]]]


def has_table(hits: Sequence[SearchHit]) -> bool:
    """Whether a table row may be among the passages (their questions are read whole, together)."""
    return any(FIELD_SEPARATOR in hit.passage.text for hit in hits)


def settled(question: str, hits: Sequence[SearchHit], first: PassageReading, scoring: ScoringConfig, temperature: float) -> bool:
    """Whether reading the passages after the first cannot change the top answer or the decision
    to answer (module docstring)."""
    if len(hits) <= 1:
        return True
    if has_table(hits):
        return False
    if scoring.answer_threshold is not None and scoring.answer_margin_scale < 0:
        return False
    if first.best_score - first.null_score + scoring.tau < 0:  # its null wins: answers may come from every passage
        return False
    result = combine(question, hits, [first] + [UNREAD] * (len(hits) - 1), scoring, temperature)
    if result.abstained or not result.answers:
        return False
    most = scoring.retrieval_weight * log_softmax([hit.score for hit in hits], temperature)[1:]
    return bool((most < result.answers[0].score).all())


def read_in_stages(
    read: Read, questions: Sequence[str], hits: Sequence[Sequence[SearchHit]], scoring: ScoringConfig, temperature: float
) -> tuple[list[list[PassageReading]], int]:  # fmt: skip
    """Every question's readings (UNREAD for a passage left unread) and how many passages were
    left unread: the first passages of all questions in one batch, then the rest of the
    questions not settled by their first in another. A question with a table among its passages
    is read whole in the first batch: the reader decides which table rows may answer it over all
    its passages together."""
    readings: list[list[PassageReading]] = [[UNREAD] * len(found) for found in hits]
    asked = [i for i, found in enumerate(hits) if found]
    whole = {i for i in asked if has_table(hits[i])}
    first_texts = [[h.passage.text for h in hits[i]] if i in whole else [hits[i][0].passage.text] for i in asked]
    for i, found in zip(asked, read([questions[i] for i in asked], first_texts)):
        readings[i][: len(found)] = found
    rest = [i for i in asked if i not in whole and not settled(questions[i], hits[i], readings[i][0], scoring, temperature)]
    for i, others in zip(rest, read([questions[i] for i in rest], [[h.passage.text for h in hits[i][1:]] for i in rest])):
        readings[i][1:] = others
    read_all = set(rest) | whole
    unread = sum(len(found) - 1 for i, found in enumerate(hits) if found and i not in read_all)
    return readings, unread
