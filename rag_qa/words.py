"""A question's content words, and how many of them (or how much of their rarity) a set of
passages holds: evidence that the passages speak of what the question asks about.

The retriever weighs each word by its rarity among the passages searched (`rarity`); the answer
scoring turns the shares into confidence (docs/architecture.md, "Combining").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    "what which who whom whose when where why how does did the and for are was were has have had with from that this "
    "these those into than then there their they them its about after before during between under over most more much "
    "many some any can could would should will shall may might must also not only such each other per via use used "
    "using been being long often far old".split()
)  # "how long", "how often": the question's form, not its subject
_SUFFIXES = ("ing", "ies", "ied", "ed", "s", "ly")


def content_words(question: str) -> list[str]:
    """The question's content words (three letters or more, not a stopword), lower case, each
    once, in the question's order."""
    return list(dict.fromkeys(word for word in _WORD.findall(question.lower()) if len(word) >= 3 and word not in _STOPWORDS))


def rarity(passages: int, holding: int) -> float:
    """A word's inverse document frequency among `passages` when `holding` of them hold it:
    log((passages + 1) / (holding + 1)), so a word no passage holds weighs the most and one that
    every passage holds nothing (never less: counts taken while a writer adds passages may
    disagree)."""
    return max(0.0, math.log((passages + 1) / (holding + 1)))


def question_words_found(question: str, texts: Sequence[str], weights: Mapping[str, float] | None = None) -> float:
    """The share of the question's content words (compared by a crude stem: a common suffix and a
    final e off, then five letters) that `texts` hold; with `weights` (a content word's rarity),
    the share of their weight. 1 for a question without any (or whose words weigh nothing). A
    question about something its passages never mention ("... on the moon") is rarely answered
    right from them, the more so when the missing word is rare in the documents."""
    wanted: dict[str, float] = {}
    for word in content_words(question):
        stem = _stem(word)
        wanted[stem] = max(wanted.get(stem, 0.0), weights.get(word, 1.0) if weights is not None else 1.0)
    total = sum(wanted.values())
    if not wanted or total <= 0:
        return 1.0
    held = set().union(*map(_stems, texts))
    return sum(weight for stem, weight in wanted.items() if stem in held) / total


@lru_cache(maxsize=4096)
def _stems(text: str) -> frozenset[str]:
    """The crude stems of `text`'s content words (remembered: a passage is read for many questions,
    and a calibration scores every question many times)."""
    return frozenset(map(_stem, content_words(text)))


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return (word[:-1] if word.endswith("e") and len(word) > 3 else word)[:5]
