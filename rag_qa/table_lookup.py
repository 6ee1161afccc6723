"""Reading a table as a person does: find the row the question names, then the column it asks for.

Table rows reach the reader as lines naming each cell by its header ("Star: δ Pav; Mass: 0.99;
Luminosity: 1.22", `ingest.tables`). A span reader trained on prose often picks a value from the
wrong row or column of such a line (on the PDF table benchmark it found the right cell first for 4
of 85 questions). A person asked "What is the luminosity of δ Pav?" looks for the row holding
"δ Pav" and reads the cell under "Luminosity". `best_cell` does that over the passages read for a
question: the row whose other cells hold the most of the question's words, then the cell whose
header holds the most of them, then the reader's own score for the cell; `answer.combine` puts that
cell first when the question names its row (by most of one cell) and its column, or that row alone
while the reader is unsure of its own answer, or when the reader's own top answer is in a table
row anyway.

Words are compared after case folding, with Greek letters spelled out ("κ" is "kappa") and a
plural or verb ending off; a word that more than half of the rows hold (the table's subject, say
"RcppGSL") does not tell rows apart and is not counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag_qa.ingest.tables import FIELD_SEPARATOR, line_bounds, row_fields

QUESTION_WORDS = frozenset(
    "a an and are as at be by can could did do does for from give gives given has have how in is it its listed many much of on "
    "or reported says shown table tables that the their there these this those to value values was were what when where which "
    "who whose why with column columns row rows example according called".split()
)  # words of a question that say nothing about which row or column is meant
GREEK_NAMES = dict(zip(
    "αβγδεζηθικλμµνξπρστυφχψω",
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu mu nu xi pi rho sigma tau upsilon phi chi psi omega".split(),
))  # fmt: skip
_WORD = re.compile(r"\d+(?:[.,]\d+)*|\w+")  # a number whole: "1872.1" holds no "1"
_ENDINGS = ("ing", "ies", "ed", "es", "ly", "s")
MAX_SECTION_WORDS = 6  # a short line right above rows ("Correct calculations:") names the rows under it
MIN_LABEL_SHARE = 0.5  # a row is named when the question's words make up at least this much of one of its cells
COMMON_SHARE = 0.5  # a word held by more than this share of the rows read (four rows or more) names no row
MIN_ROWS_FOR_COMMON = 4


def terms(text: str) -> frozenset[str]:
    """The words of `text` that can name a row or a column, in the form they are compared in."""
    spelled = "".join(f" {GREEK_NAMES[ch]} " if ch in GREEK_NAMES else ch for ch in text.casefold())
    return frozenset(_without_ending(word) for word in _WORD.findall(spelled) if word not in QUESTION_WORDS)


def _without_ending(word: str) -> str:
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[: -len(ending)]
    return word


@dataclass(frozen=True)
class TableRow:
    """A row line of a passage: where it starts in the passage, and its fields' offsets in the line."""

    start: int
    line: str
    fields: tuple[tuple[int, int, int], ...]  # (field start, value start, end), as `row_fields` gives them
    section: str = ""  # the short line heading the run of rows this row is in, if any

    def value_terms(self) -> list[frozenset[str]]:
        """The words of each cell; the section's words count as the first cell's."""
        values = [terms(self.line[value:end]) for _, value, end in self.fields]
        return [values[0] | terms(self.section), *values[1:]] if self.section else values

    def header(self, index: int) -> str:
        start, value, _ = self.fields[index]
        return self.line[start : value - 2] if value > start else ""


def table_rows(text: str) -> list[TableRow]:
    """The table rows of a passage, in order, each with the section line heading it, if any (a
    short line ending in a colon, such as "Correct calculations:", right above rows)."""
    rows: list[TableRow] = []
    if FIELD_SEPARATOR not in text:
        return rows  # no row without a field separator: prose passages cost one search
    start, section = 0, ""
    for line in text.split("\n"):
        fields = row_fields(line)
        if fields is not None:
            rows.append(TableRow(start, line, tuple(fields), section))
        else:
            section = line.strip() if _is_section(line) else ""
        start += len(line) + 1
    return rows


def _is_section(line: str) -> bool:
    return 0 < len(line.split()) <= MAX_SECTION_WORDS and line.rstrip().endswith(":")


def common_terms(rows_of_passages: Sequence[Sequence[TableRow]]) -> frozenset[str]:
    """Words held by more than half of the rows read for a question: they name no row."""
    rows = [row for rows in rows_of_passages for row in rows]
    if len(rows) < MIN_ROWS_FOR_COMMON:
        return frozenset()
    counts: dict[str, int] = {}
    for row in rows:
        for word in frozenset().union(*row.value_terms()):
            counts[word] = counts.get(word, 0) + 1
    return frozenset(word for word, count in counts.items() if count > COMMON_SHARE * len(rows))


def row_matches(question: str, texts: Sequence[str]) -> list[dict[int, int]]:
    """Per passage, for each table row (by where its line starts), how many of the question's
    words its cells hold (not its headers: every row shares those)."""
    rows_of_passages = [table_rows(text) for text in texts]
    wanted = terms(question) - common_terms(rows_of_passages)
    return [{row.start: len(wanted & frozenset().union(*row.value_terms())) for row in rows} for rows in rows_of_passages]


def matching_rows(matches: Sequence[dict[int, int]]) -> list[frozenset[int] | None]:
    """Per passage, the rows an answer may come from: those holding the most question words
    among all the passages read for one question (`row_matches`); None everywhere when no row
    holds any (nothing to choose by). A table row naming something else is not read as the
    answer to a question about the row that names it."""
    best = max((count for counts in matches for count in counts.values()), default=0)
    if not best:
        return [None for _ in matches]
    return [frozenset(start for start, count in counts.items() if count == best) for counts in matches]


@dataclass(frozen=True)
class CellMatch:
    """A table cell as the answer to a question, and how well its row and column match it."""

    passage: int  # index of the passage among those read
    start: int  # the cell's value, as offsets into the passage text
    end: int
    row_words: int  # question words held by the row's other cells
    header_words: int  # question words held by the cell's header
    reader_log_prob: float | None  # the reader's log P(this cell's value | passage), when among its spans
    label_share: float  # the most of any other cell of the row that the question's words make up
    only_row: bool = False  # no other row read for the question holds any of its words

    @property
    def named(self) -> bool:
        """The question names the row by most of one of its cells (its label, say "δ Pav"), not by
        a word that happens to stand in a longer cell ("a day" of "2 dollars a day")."""
        return self.label_share >= MIN_LABEL_SHARE

    @property
    def strong(self) -> bool:
        """The question names the row and the column."""
        return self.named and self.header_words >= 1

    @property
    def names_only_this_row(self) -> bool:
        return self.named and self.only_row


def best_cell(question: str, texts: Sequence[str], span_log_probs: Sequence[dict[tuple[int, int], float]]) -> CellMatch | None:
    """The cell a person would read for `question` in the table rows of `texts` (the passages
    read, best first): most question words in its row's other cells, then in its header (one
    less when the cell itself holds some: it is then partly what the question names, not what it
    asks), then the reader's score for it, then the earlier passage. A cell holding only question
    words is the row's name, not its answer; a row naming none of the question's words answers
    nothing."""
    rows_of_passages = [table_rows(text) for text in texts]
    wanted = terms(question) - common_terms(rows_of_passages)
    best, best_key, rows_named = None, None, 0
    for index, rows in enumerate(rows_of_passages):
        for row in rows:
            values = row.value_terms()
            rows_named += bool(wanted & frozenset().union(*values))
            for column, (_, value, end) in enumerate(row.fields):
                others = frozenset().union(*(words for i, words in enumerate(values) if i != column))
                row_words = len(wanted & others)
                if not row_words or (values[column] and values[column] <= wanted):
                    continue
                start, stop = row.start + value, row.start + end
                log_prob = span_log_probs[index].get((start, stop))
                header_words = len(wanted & terms(row.header(column)))
                names_part = bool(wanted & values[column])  # the cell holds some of what the question names
                key = (row_words, header_words - names_part, -float("inf") if log_prob is None else log_prob, -index)
                if best_key is None or key > best_key:
                    best_key = key
                    share = max((len(wanted & words) / len(words) for i, words in enumerate(values) if i != column and words), default=0.0)
                    best = CellMatch(index, start, stop, row_words, header_words, log_prob, share)
    return replace(best, only_row=rows_named == 1) if best is not None else None


def in_table_row(text: str, start: int) -> bool:
    """Whether offset `start` of a passage lies in one of its table rows."""
    return row_fields(text[slice(*line_bounds(text, start))]) is not None
