"""Span decoding and answer scoring with hand-set logits: no model weights involved."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rag_qa.answer import combine
from rag_qa.config import ReaderConfig, ScoringConfig
from hypothesis import given, settings
from hypothesis import strategies as st

from rag_qa.answer import answer_confidences
from rag_qa.ingest.text import clean_mapped
from rag_qa.reader import PassageReading, Reader, Span, decode_window, merge_windows, window_features
from rag_qa.records import Passage, SearchHit

NEG = -10.0


def logits(length: int, start: dict[int, float], end: dict[int, float], cls: tuple[float, float] = (0.0, 0.0)):
    s, e = np.full(length, NEG), np.full(length, NEG)
    s[0], e[0] = cls
    for i, v in start.items():
        s[i] = v
    for i, v in end.items():
        e[i] = v
    return s, e


def reading_for(text: str, spans: list[tuple[int, int, float]], null: float) -> PassageReading:
    return PassageReading(null, tuple(Span(a, b, text[a:b], sc, sc - 1.0) for a, b, sc in spans))


def numbered_words(n: int) -> tuple[str, list[tuple[int, int]]]:
    """A text "w0 w1 w2 ..." and each word's character span: one token per word."""
    words = [f"w{i}" for i in range(n)]
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


def squad_rule(start: np.ndarray, end: np.ndarray, context: np.ndarray, max_tokens: int) -> tuple[bool, tuple[int, int] | None]:
    """The standard SQuAD 2.0 decision, by brute force: best valid span vs the null score."""
    best, best_span = -np.inf, None
    for i, j in itertools.product(range(len(start)), repeat=2):
        if context[i] and context[j] and i <= j < i + max_tokens and start[i] + end[j] > best:
            best, best_span = start[i] + end[j], (i, j)
    null = start[0] + end[0]
    return bool(null - best > 0), best_span


def test_null_wins_in_every_window_means_abstain():
    text = "alpha beta gamma delta"
    offsets = [(0, 0), (0, 5), (6, 10), (11, 16), (17, 22)]
    context = np.array([False, True, True, True, True])
    windows = []
    for _ in range(3):
        s, e = logits(5, {2: 1.0}, {3: 1.0}, cls=(3.0, 3.0))
        windows.append((decode_window(s, e, context, 30, 5), offsets))
    reading = merge_windows(text, windows, 5)
    assert reading.null_score == 6.0 and reading.best_score == 2.0
    result = combine("q?", [SearchHit(Passage("p", text), 0.0)], [reading], ScoringConfig(retrieval_weight=0), 1.0)
    assert result.abstained and result.best is None and result.no_answer_confidence > 0.9
    assert result.answers[0].text == "beta gamma"  # still the best guess, for evaluation
    assert result.to_dict()["answers"] == [] and result.to_dict()["best_guess"]["text"] == "beta gamma"


def test_passage_null_is_minimum_over_windows_and_best_span_maximum():
    text = "one two three four five six"
    offsets_a = [(0, 0), (0, 3), (4, 7), (8, 13), (14, 18)]
    offsets_b = [(0, 0), (8, 13), (14, 18), (19, 23), (24, 27)]
    context = np.array([False, True, True, True, True])
    a = decode_window(*logits(5, {3: 2.0}, {4: 2.0}, cls=(4.0, 4.0)), context, 30, 5)  # null 8, "three four" 4
    b = decode_window(*logits(5, {2: 3.0}, {2: 3.0}, cls=(1.0, 1.0)), context, 30, 5)  # null 2, "four" 6
    reading = merge_windows(text, [(a, offsets_a), (b, offsets_b)], 5)
    assert reading.null_score == 2.0
    assert reading.spans[0].text == "four" and reading.best_score == 6.0


def test_answer_in_the_overlap_of_two_windows_is_found_once():
    text = "a b target word c d"
    offsets_1 = [(0, 0), (0, 1), (2, 3), (4, 10), (11, 15)]
    offsets_2 = [(0, 0), (4, 10), (11, 15), (16, 17), (18, 19)]
    context = np.array([False, True, True, True, True])
    w1 = decode_window(*logits(5, {3: 5.0}, {4: 5.0}), context, 30, 5)
    w2 = decode_window(*logits(5, {1: 6.0}, {2: 6.0}), context, 30, 5)
    reading = merge_windows(text, [(w1, offsets_1), (w2, offsets_2)], 5)
    matches = [s for s in reading.spans if s.text == "target word"]
    assert len(matches) == 1 and matches[0].score == 12.0 and (matches[0].start, matches[0].end) == (4, 15)


def test_spans_longer_than_the_maximum_are_never_returned():
    context = np.array([False] + [True] * 9)
    start, end = logits(10, {1: 9.0, 5: 1.0}, {9: 9.0, 6: 1.0})
    decoding = decode_window(start, end, context, max_answer_tokens=4, top_n=20)
    assert all(j - i < 4 for i, j, _ in decoding.spans)
    assert (1, 9, 18.0) not in decoding.spans  # 9 tokens long: the best pair, but too long
    assert decoding.spans[0] == (5, 6, 2.0)
    assert [s[:2] for s in decoding.spans[1:5]] == [(1, 1), (1, 2), (1, 3), (1, 4)]  # ties: by start, then end


def test_non_context_tokens_are_never_answers():
    context = np.array([False, False, False, True, True, False])
    start, end = logits(6, {1: 20.0, 3: 1.0}, {2: 20.0, 4: 1.0, 5: 30.0})
    decoding = decode_window(start, end, context, 30, 10)
    assert {(i, j) for i, j, _ in decoding.spans} <= {(3, 3), (3, 4), (4, 4)}


def test_sub_word_spans_are_not_widened_and_edge_whitespace_is_trimmed():
    """The SQuAD rule quotes the tokens' characters: "10" in "10km" stays "10". (Widening to whole
    words changed no answer on dev-eval at either window size, and it could pass
    max_answer_tokens, so it is gone.) A span whose tokens carry surrounding spaces (byte-level
    BPE offsets) is quoted without them."""
    text = "It is 10km away."
    offsets = [(0, 0), (0, 2), (2, 5), (5, 8), (8, 10), (10, 15), (15, 16)]  # " is" and " 10" keep their space
    context = np.array([False] + [True] * 6)
    reading = merge_windows(text, [(decode_window(*logits(7, {3: 9.0}, {3: 9.0}), context, 30, 5), offsets)], 5)
    assert reading.spans[0].text == "10" and (reading.spans[0].start, reading.spans[0].end) == (6, 8)
    assert all(s.text == s.text.strip() and s.text for s in reading.spans)


def test_ties_are_broken_by_earlier_start():
    context = np.array([False, True, True, True])
    decoding = decode_window(*logits(4, {1: 1.0, 3: 1.0}, {1: 1.0, 3: 1.0}), context, 1, 5)
    assert [span[:2] for span in decoding.spans[:2]] == [(1, 1), (3, 3)]


def test_no_passages_means_abstain_with_certainty():
    result = combine("q?", [], [], ScoringConfig(), 1.0)
    assert result.abstained and result.answers == () and result.no_answer_confidence == 1.0


@pytest.mark.parametrize("seed", range(300))
def test_single_passage_decision_equals_the_squad2_rule(seed):
    """One passage, retrieval weight 0, tau 0: same answer/abstain decision and span as SQuAD 2.0."""
    rng = np.random.default_rng(seed)
    length = int(rng.integers(6, 40))
    start, end = rng.normal(0, 3, length), rng.normal(0, 3, length)
    context = np.array([False] + [bool(x) for x in rng.random(length - 1) > 0.2])
    context[-1] = True
    text, offsets = numbered_words(length)
    offsets[0] = (0, 0)
    reading = merge_windows(text, [(decode_window(start, end, context, 8, 5), offsets)], 5)
    result = combine("q?", [SearchHit(Passage("p", text), 0.3)], [reading], ScoringConfig(retrieval_weight=0.0, tau=0.0), 1.0)
    abstain, (i, j) = squad_rule(start, end, context, 8)
    assert result.abstained == abstain
    assert result.answers[0].text == text[offsets[i][0] : offsets[j][1]]


def test_answers_rank_by_span_and_retrieval_and_merge_overlapping_passages():
    doc = "Intro text. The answer is Paris, the capital. More text follows here."
    first = Passage("p1", doc[0:46], "doc.txt", 0, 46, page=1, page_breaks=(30,))  # page 2 starts at character 30
    second = Passage("p2", doc[12:70], "doc.txt", 12, 70, page=1, page_breaks=(18,))  # overlaps the first
    at = doc.index("Paris")
    r1 = reading_for(first.text, [(at, at + 5, 5.0)], null=1.0)
    r2 = reading_for(second.text, [(at - 12, at - 12 + 5, 4.0), (0, 3, 3.5)], null=1.0)
    hits = [SearchHit(first, 0.9), SearchHit(second, 0.2)]
    result = combine("q?", hits, [r1, r2], ScoringConfig(retrieval_weight=1.0), 0.1)
    assert not result.abstained
    texts = [a.text for a in result.answers]
    assert texts.count("Paris") == 1 and texts[0] == "Paris"
    best = result.answers[0]
    assert doc[best.start : best.end] == "Paris" and best.page == 1 and best.passage.id == "p1"
    assert 0 < best.confidence < 1 and sum(a.confidence for a in result.answers) <= 1.0
    assert result.answers[1].text == "The" and result.answers[1].page == 1
    assert second.page_at(doc.index("More") - 12) == 2 and first.page_at(0) == 1 and Passage("x", "y").page_at(0) is None


def test_retrieval_weight_changes_the_ranking():
    a, b = Passage("a", "first answer here"), Passage("b", "second answer here")
    ra, rb = reading_for(a.text, [(0, 5, 5.0)], 0.0), reading_for(b.text, [(0, 6, 5.5)], 0.0)
    hits = [SearchHit(a, 0.9), SearchHit(b, 0.1)]
    no_weight = combine("q", hits, [ra, rb], ScoringConfig(retrieval_weight=0.0), 0.1)
    weighted = combine("q", hits, [ra, rb], ScoringConfig(retrieval_weight=1.0), 0.1)
    assert no_weight.answers[0].text == "second" and weighted.answers[0].text == "first"


def test_reader_windows_long_passages_with_real_tokenizer(monkeypatch, tiny_bert):
    """A passage many windows long: windows overlap, offsets map back exactly, and a planted
    answer is found once even though several windows contain it."""
    reader = Reader(ReaderConfig(model=tiny_bert, max_seq_len=48, doc_stride=16, max_query_tokens=8))
    text = " ".join(f"filler{i}" for i in range(120)) + " the answer is zanzibar indeed " + " ".join(f"tail{i}" for i in range(40))
    target = text.index("zanzibar")

    def planted(features):
        result = []
        for index in range(len(features["input_ids"])):
            offsets, sequence = features["offset_mapping"][index], features.sequence_ids(index)
            start, end = np.full(len(offsets), -5.0), np.full(len(offsets), -5.0)
            start[0] = end[0] = 0.0
            for t, (a, b) in enumerate(offsets):
                if sequence[t] == 1 and a == target:
                    start[t] = 8.0
                if sequence[t] == 1 and b == target + len("zanzibar"):
                    end[t] = 8.0
            result.append((start, end))
        return result

    monkeypatch.setattr(reader, "window_logits", planted)
    assert len(window_features(reader.tokenizer, ["where?"], [text], 48, 16, 8)["input_ids"]) > 10  # many windows
    reading = reader.read(["where?"], [[text]])[0][0]
    assert reading.spans[0].text == "zanzibar" and text[reading.spans[0].start : reading.spans[0].end] == "zanzibar"
    assert reading.null_score == 0.0 and sum(s.text == "zanzibar" for s in reading.spans) == 1


def test_across_windows_the_highest_raw_score_wins_not_a_per_window_softmax():
    """The issue's case: window A has spans scoring 10.0 and 9.95, window B one span scoring 9.9.
    A per-window softmax would prefer B's lone span; the SQuAD rule takes A's 10.0."""
    text = "w0 w1 w2 w3 w4 w5"
    words = [(i * 3, i * 3 + 2) for i in range(6)]
    offsets_a, offsets_b = [(0, 0)] + words[:4], [(0, 0)] + words[2:]
    context = np.array([False, True, True, True, True])
    a = decode_window(*logits(5, {1: 5.0, 2: 4.95}, {1: 5.0, 2: 5.0}, cls=(-5.0, -5.0)), context, 1, 5)
    b = decode_window(*logits(5, {4: 4.95}, {4: 4.95}, cls=(-5.0, -5.0)), context, 1, 5)
    reading = merge_windows(text, [(a, offsets_a), (b, offsets_b)], 5)
    result = combine("q?", [SearchHit(Passage("p", text), 0.0)], [reading], ScoringConfig(retrieval_weight=0.0, tau=0.0), 1.0)
    assert [s.score for s in reading.spans[:3]] == [10.0, 9.95, 9.9]
    assert result.answers[0].text == "w0" and not result.abstained
    assert [a.text for a in result.answers[:3]] == ["w0", "w1", "w5"]


@st.composite
def multi_window_logits(draw):
    """1-4 windows over one passage of words, overlapping at random, each with random logits."""
    n_words = draw(st.integers(3, 24))
    n_windows = draw(st.integers(1, 4))
    windows, first = [], 0
    for w in range(n_windows):
        size = draw(st.integers(1, n_words))
        first = min(first, n_words - 1)
        last = min(n_words, first + size) if w < n_windows - 1 else n_words
        length = last - first + 1
        values = st.floats(-8, 8, allow_nan=False, width=32)
        start = np.array(draw(st.lists(values, min_size=length, max_size=length)), dtype=np.float64)
        end = np.array(draw(st.lists(values, min_size=length, max_size=length)), dtype=np.float64)
        windows.append((first, last, start, end))
        first = max(first + 1, last - draw(st.integers(0, max(0, last - first - 1))))
        if first >= n_words:
            break
    return n_words, windows, draw(st.integers(1, 6))


@settings(max_examples=300, deadline=None)
@given(multi_window_logits())
def test_one_passage_over_many_windows_decides_like_brute_force_squad(case):
    """Random logits for 1-4 windows with random overlaps; brute-force SQuAD 2.0 decoding is the
    reference: with one passage, weight 0 and tau 0, the abstention and the best span agree."""
    n_words, windows, max_tokens = case
    text, spans_of_words = numbered_words(n_words)
    decoded, best, best_text, null = [], -np.inf, set(), np.inf
    for first, last, start, end in windows:
        offsets = [(0, 0)] + spans_of_words[first:last]
        context = np.array([False] + [True] * (last - first))
        decoded.append((decode_window(start, end, context, max_tokens, 5), offsets))
        null = min(null, start[0] + end[0])
        for i, j in itertools.product(range(1, len(offsets)), repeat=2):
            if i <= j < i + max_tokens:
                score = start[i] + end[j]
                quote = text[offsets[i][0] : offsets[j][1]]
                if score > best:
                    best, best_text = score, {quote}
                elif score == best:
                    best_text.add(quote)
    reading = merge_windows(text, decoded, 5)
    result = combine("q?", [SearchHit(Passage("p", text), 0.0)], [reading], ScoringConfig(retrieval_weight=0.0, tau=0.0), 1.0)
    assert result.abstained == bool(null - best > 0)
    assert reading.best_score == pytest.approx(best) and result.answers[0].text in best_text


def test_passage_span_probabilities_share_one_normaliser():
    """Two windows of one passage: every span's log-probability is its raw score minus one
    passage normaliser (the null and both windows' spans), so they sum to at most 1 with the null."""
    text = "one two three four"
    offsets_a, offsets_b = [(0, 0), (0, 3), (4, 7), (8, 13)], [(0, 0), (4, 7), (8, 13), (14, 18)]
    context = np.array([False, True, True, True])
    a = decode_window(*logits(4, {1: 2.0}, {2: 1.0}, cls=(1.0, 0.5)), context, 30, 10)
    b = decode_window(*logits(4, {3: 3.0}, {3: 1.0}, cls=(0.0, 0.0)), context, 30, 10)
    reading = merge_windows(text, [(a, offsets_a), (b, offsets_b)], 10)
    offsets = {s.score - s.log_prob for s in reading.spans}
    assert max(offsets) - min(offsets) < 1e-9  # one normaliser
    total = np.exp([s.log_prob for s in reading.spans]).sum() + np.exp(reading.null_score - offsets.pop())
    assert total <= 1.0 + 1e-9


def test_offsets_map_back_through_cleaning_to_the_original_text():
    """The model reads cleaned text; spans are quoted from the original at the original offsets."""
    original = "A  dimensional\tconstant  is used by Henry\u00a0 Cavendish.\r\nNext."
    cleaned = clean_mapped(original, join_lines=True)
    at = cleaned.text.index("Henry Cavendish")
    offsets = [(0, 0), (at, at + 5), (at + 6, at + 15)]
    context = np.array([False, True, True])
    reading = merge_windows(original, [(decode_window(*logits(3, {1: 5.0}, {2: 5.0}), context, 30, 5), offsets)], 5, cleaned)
    span = reading.spans[0]
    assert original[span.start : span.end] == span.text == "Henry\u00a0 Cavendish"


def test_near_tied_answers_keep_the_top_answers_confidence():
    assert answer_confidences(0.9, [5.0, 4.99]) == pytest.approx([0.9, 0.1])
    low = answer_confidences(0.2, [5.0, 4.0, 1.0, 0.5])
    assert low[0] == 0.2 and all(c <= low[0] for c in low) and sum(low) <= 1.0
    assert low[1] == pytest.approx(0.2 * np.exp(-1.0))


def test_a_span_that_overlapping_windows_share_counts_once_in_the_normaliser(monkeypatch, tiny_bert):
    """Equal logits everywhere over a passage many windows long: every distinct span of the
    context scores 0, so the normaliser is log(1 + the number of distinct spans), however many
    windows see each span (counted per window, it would grow with the windows' overlaps)."""
    reader = Reader(ReaderConfig(model=tiny_bert, max_seq_len=48, doc_stride=16, max_query_tokens=8, max_answer_tokens=5))
    text = " ".join(f"word{i}" for i in range(90))
    monkeypatch.setattr(reader, "window_logits", lambda features: [(np.zeros(len(ids)), np.zeros(len(ids))) for ids in features["input_ids"]])
    assert len(window_features(reader.tokenizer, ["where?"], [text], 48, 16, 8)["input_ids"]) > 5
    reading = reader.read(["where?"], [[text]])[0][0]
    n = len(reader.tokenizer(text, add_special_tokens=False)["input_ids"])
    distinct = sum(n - width for width in range(5))
    assert reading.null_score == 0.0
    assert all(s.log_prob == pytest.approx(-np.log(1 + distinct)) for s in reading.spans)


def test_the_same_answer_in_several_passages_is_shown_once_at_its_best_place():
    """"Paris" twice (in two documents) is one answer, shown at its best place, with that place's
    own score: evidence is not pooled, so Lyon's higher single span ranks first."""
    a, b, c = Passage("a", "It is Paris.", "a.txt", 0, 12), Passage("b", "Answer: paris", "b.txt", 0, 13), Passage("c", "Lyon, surely", "c.txt", 0, 12)
    readings = [reading_for(a.text, [(6, 11, 4.2)], 0.0), reading_for(b.text, [(8, 13, 4.0)], 0.0), reading_for(c.text, [(0, 4, 4.5)], 0.0)]
    result = combine("Where?", [SearchHit(p, 0.5) for p in (a, b, c)], readings, ScoringConfig(retrieval_weight=0.0), 1.0)
    assert [(x.text, x.source) for x in result.answers] == [("Lyon", "c.txt"), ("Paris", "a.txt")]
    assert result.answers[0].score == pytest.approx(3.5) and result.answers[1].score == pytest.approx(3.2)


def test_the_top_answers_confidence_comes_from_its_own_ranking_probability():
    """Rank 1 is chosen with the retrieval score; its confidence is calibrated on its own ranking
    probability (the logit of exp(its score)), not on the question's best margin (6, in another
    passage). Uncalibrated (scale 1, bias 0) it is that probability."""
    strong, likely = Passage("s", "six is here"), Passage("l", "three is here")
    readings = [PassageReading(0.0, (Span(0, 3, "six", 6.0, -0.2),)), PassageReading(0.0, (Span(0, 5, "three", 3.0, -0.7),))]
    hits = [SearchHit(strong, 0.0), SearchHit(likely, 1.0)]
    result = combine("q", hits, readings, ScoringConfig(retrieval_weight=1.0), 0.1)
    top = result.answers[0]
    assert top.text == "three" and result.margin == 6.0 and top.score == pytest.approx(-0.7, abs=1e-3)  # log P(passage) near 0
    assert top.confidence == pytest.approx(np.exp(top.score))
    fitted = combine("q", hits, readings, ScoringConfig(retrieval_weight=1.0, answer_scale=2.0, answer_bias=-1.0), 0.1).answers[0]
    logit = top.score - np.log1p(-np.exp(top.score))
    assert fitted.confidence == pytest.approx(1 / (1 + np.exp(-(2.0 * logit - 1.0))))
