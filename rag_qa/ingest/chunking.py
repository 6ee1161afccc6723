"""Cutting documents into passages that fit the embedder, at sentence boundaries where possible.

Sizes are counted in the embedder's own tokens (so no passage is silently truncated when it is
embedded), and every passage is an exact slice of its document's text.
"""

from __future__ import annotations

import bisect
import re
from typing import Any, Protocol

from rag_qa.config import ChunkingConfig
from rag_qa.ingest.tables import FIELD_SEPARATOR, row_fields
from rag_qa.ingest.text import trim_span
from rag_qa.records import Document, Passage, page_breaks

# A sentence ends after . ! ? (plus closing quotes/brackets) followed by whitespace, or at a blank line.
_SENTENCE_END = re.compile(r"""(?<=[.!?])(["')\]\u201d\u2019]*)\s+|\n\s*\n""")


class Tokenizer(Protocol):
    def __call__(self, text: str, **kwargs: Any) -> Any: ...


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, whitespace trimmed, in order and non-overlapping. A table's
    row (`tables.row_fields`) is a sentence of its own, whole even where a cell holds a full stop
    ("Output: . 0"), so a passage never starts or ends inside a row."""
    spans = []
    for start, end, is_row in _row_blocks(text):
        if is_row:
            spans.append((start, end))
            continue
        for match in _SENTENCE_END.finditer(text, start, end):
            spans.append((start, match.end(1) if match.group(1) is not None else match.start()))
            start = match.end()
        spans.append((start, end))
    return [trimmed for span in spans if (trimmed := trim_span(text, *span))]


def _row_blocks(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, is a row line) for each table row line of `text` and each run of other text
    between them (all of `text` as one run when it holds no row)."""
    if FIELD_SEPARATOR not in text or "\n" not in text:
        return [(0, len(text), False)]
    blocks: list[tuple[int, int, bool]] = []
    position = 0
    for line in text.split("\n"):
        end = position + len(line)
        is_row = row_fields(line) is not None
        if not is_row and blocks and not blocks[-1][2]:
            blocks[-1] = (blocks[-1][0], end, False)  # prose runs on: one block
        else:
            blocks.append((position, end, is_row))
        position = end + 1
    return blocks


class _TokenCounter:
    """Counts the tokens in any character range of one text from a single tokenizer call."""

    def __init__(self, text: str, tokenizer: Tokenizer):
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        self.starts = [start for start, end in encoding["offset_mapping"] if end > start]

    def count(self, start: int, end: int) -> int:
        return bisect.bisect_left(self.starts, end) - bisect.bisect_left(self.starts, start)

    def boundary_after(self, start: int, n_tokens: int) -> int:
        """Character offset where the (n_tokens+1)-th token at or after `start` begins."""
        index = bisect.bisect_left(self.starts, start) + n_tokens
        return self.starts[index] if index < len(self.starts) else -1


def _split_long(text: str, span: tuple[int, int], counter: _TokenCounter, max_tokens: int) -> list[tuple[int, int]]:
    """Cut a sentence longer than `max_tokens` into pieces, preferring to cut at whitespace."""
    pieces = []
    start, end = span
    while counter.count(start, end) > max_tokens:
        cut = counter.boundary_after(start, max_tokens)
        space = text.rfind(" ", start + 1, cut + 1)
        if space > start and counter.count(start, space) > max_tokens // 2:
            cut = space
        if (piece := trim_span(text, start, cut)) is not None:
            pieces.append(piece)
        start = cut
    if (piece := trim_span(text, start, end)) is not None:
        pieces.append(piece)
    return pieces


def chunk_document(document: Document, tokenizer: Tokenizer, config: ChunkingConfig) -> list[Passage]:
    """Passages of at most `config.max_tokens` tokens; consecutive passages share whole trailing
    sentences of up to `config.overlap_tokens` tokens, so an answer near a cut is whole in one."""
    text = document.text
    counter = _TokenCounter(text, tokenizer)
    units: list[tuple[int, int]] = []
    for span in sentence_spans(text):
        units.extend(_split_long(text, span, counter, config.max_tokens))

    passages = []
    first = 0
    while first < len(units):
        last = first
        while last + 1 < len(units) and counter.count(units[first][0], units[last + 1][1]) <= config.max_tokens:
            last += 1
        passages.append(_passage(document, units[first][0], units[last][1]))
        if last + 1 >= len(units):
            break
        next_first = last + 1
        while next_first - 1 > first and counter.count(units[next_first - 1][0], units[last][1]) <= config.overlap_tokens:
            next_first -= 1
        first = next_first
    return passages


def _passage(document: Document, start: int, end: int) -> Passage:
    text = document.text[start:end]
    return Passage(
        id=Passage.make_id(document.source, start, text),
        text=text,
        source=document.source,
        char_start=start,
        char_end=end,
        page=document.page_at(start),
        page_breaks=page_breaks(document.page_starts, start, end),
    )
