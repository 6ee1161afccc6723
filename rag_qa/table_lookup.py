"""Reading a table as a person does: find the row the question names, then the column it asks for.

Table rows reach the reader as lines naming each cell by its header ("Star: δ Pav; Mass: 0.99;
Luminosity: 1.22", `ingest.tables`). A span reader trained on prose often picks a value from the
wrong row or column of such a line (on the PDF table benchmark it found the right cell first for 4
of 85 questions). A person asked "What is the luminosity of δ Pav?" looks for the row holding
"δ Pav" and reads the cell under "Luminosity". `best_cell` does that over the passages read for a
question: a row whose formula the question quotes ("round(x)"), a row the question names by
most of one of its cells, the row whose other cells hold the most of the question's words, then
the cell whose header holds the most of them (or abbreviates them: "hp" for horsepower, "NB"
for negative binomial), then
the reader's own score for the cell; `answer.combine` puts that cell first when the question
names its row and its column, or a row that stands out from the others read (or is quoted) while
the reader is unsure of its own answer, or when the reader's own top answer is in a table row
anyway.

Words are compared after case folding, with Greek letters and signs spelled out ("κ" is "kappa",
"$" is "dollar", σ and µ also "standard deviation" and "mean") and a plural or verb ending off; a
word that more than half of the rows hold (the table's subject, say "RcppGSL") does not tell rows
apart and is not counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag_qa.ingest.tables import FIELD_SEPARATOR, HEADER_SEPARATOR, row_fields, row_line_at

QUESTION_WORDS = frozenset(
    "a an and are as at be by can could did do does for from give gives given has have how in is it its listed many much of on "
    "or reported says shown table tables that the their there these this those to value values was were what when where which "
    "who whose why with column columns row rows example according called".split()
)  # words of a question that say nothing about which row or column is meant
GREEK_NAMES = dict(zip(
    "αβγδεζηθικλμµνξπρστυφχψω",
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu mu nu xi pi rho sigma tau upsilon phi chi psi omega".split(),
))  # fmt: skip
SIGN_NAMES = {"$": "dollar", "€": "euro", "£": "pound", "%": "percent", "&": "ampersand"}  # a sign a question spells out
STATISTIC_NAMES = {"σ": "sigma standard deviation", "µ": "mu mean", "μ": "mu mean"}  # what a table of statistics means by them
_SPELLED = GREEK_NAMES | SIGN_NAMES | STATISTIC_NAMES
ORDINALS = {word: str(number) for number, word in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth".split(), 1)}
_WORD = re.compile(r"\d+(?:[.,]\d+)*|\w+")  # a number whole: "1872.1" holds no "1"
_ENDINGS = ("ing", "ies", "ed", "es", "ly", "s")
MAX_TITLE_WORDS = 25  # a table's caption is one short line
MAX_SECTION_WORDS = 6  # a short line right above rows ("Correct calculations:") names the rows under it
MIN_LABEL_SHARE = 0.5  # a row is named when the question's words make up at least this much of one of its cells
COMMON_SHARE = 0.5  # a word held by more than this share of the rows read (four rows or more) names no row
MIN_ROWS_FOR_COMMON = 4
MAX_ABBREVIATION = 5  # letters of a header word that may abbreviate a question word
_LETTERS = re.compile(r"[^\W\d_]+")
MIN_QUOTE_CHARS = 4  # a shorter cell ("x^2") may stand in a question by chance
_SYMBOL = re.compile(r"[^\w\s.,;:'\"?!-]|_")
_ACRONYM = re.compile(r"^([A-Z]{1,5})(\d{0,2})$")  # a header word of initials, maybe with a number: "NB", "PC2", "Q3"
_FOOTNOTE_MARK = re.compile(r"(?<=\d) (?:\d|[a-z†‡*§])$")  # "760.4 2": a value's footnote mark, not a word of the cell
_DEFINING = re.compile(r"\bstands? for\b|\bmeans?\??$|\bwhat (?:does|do) .+ do\??$")  # asks what something is: a phrase answers


def terms(text: str) -> frozenset[str]:
    """The words of `text` that can name a row or a column, in the form they are compared in."""
    spelled = "".join(f" {_SPELLED[ch]} " if ch in _SPELLED else ch for ch in text.casefold())
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
    title: str = ""  # the table's caption or title: the short line right above its header line, if any

    def value_terms(self) -> list[frozenset[str]]:
        """The words of each cell (a footnote mark after a value, "760.4 2", is none of them); the
        section's words count as the first cell's."""
        values = [terms(_FOOTNOTE_MARK.sub("", self.line[value:end])) for _, value, end in self.fields]
        return [values[0] | terms(self.section), *values[1:]] if self.section else values

    def header(self, index: int) -> str:
        start, value, _ = self.fields[index]
        return self.line[start : value - 2] if value > start else ""


def table_rows(text: str) -> list[TableRow]:
    """The table rows of a passage, in order, each with the section line heading it, if any (a
    short line ending in a colon, such as "Correct calculations:", right above rows), and its
    table's title (the short line right above the header line: "Table 5: Numbers Aligned on the
    Decimal Point") while the passage holds it."""
    rows: list[TableRow] = []
    if FIELD_SEPARATOR not in text:
        return rows  # no row without a field separator: prose passages cost one search
    start, section, title, above = 0, "", "", ""
    for line in text.split("\n"):
        fields = row_fields(line)
        if fields is not None:
            rows.append(TableRow(start, line, tuple(fields), section, title))
        else:
            section = line.strip() if _is_section(line) else ""
            if HEADER_SEPARATOR in line:
                title = above if 0 < len(above.split()) <= MAX_TITLE_WORDS else ""
            elif not section:
                title = ""  # prose: the table has ended
            above = line.strip()
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
    header_words: int  # question words held by the cell's header, or abbreviated there ("hp" horsepower)
    reader_log_prob: float | None  # the reader's log P(this cell's value | passage), when among its spans
    label_share: float  # the most of any other cell of the row that the question's words make up
    header_initials: int = 0  # question words a one-letter header word stands for ("V" visual): a weak sign
    best_row: bool = False  # its row holds more of the question's words than any other row read
    quoted: bool = False  # the question quotes another cell of its row whole, symbols and all ("round(x)")
    title_words: int = 0  # question words held by its table's title and by none of its row's cells
    numbered_column: bool = False  # the question names its column by a word and the column's number ("step 3")
    header_share: float = 0.0  # the share of its header's words that are question words ("σ" 1, "(T − µ)/σ" less)

    @property
    def named(self) -> bool:
        """The question names the row by most of one of its cells (its label, say "δ Pav"), not by
        a word that happens to stand in a longer cell ("a day" of "2 dollars a day"), or quotes
        one of its cells."""
        return self.quoted or self.label_share >= MIN_LABEL_SHARE

    @property
    def strong(self) -> bool:
        """The question names the row and the column."""
        return self.named and self.header_words >= 1

    @property
    def names_best_row(self) -> bool:
        return self.named and self.best_row


def best_cell(question: str, texts: Sequence[str], span_log_probs: Sequence[dict[tuple[int, int], float]]) -> CellMatch | None:
    """The cell a person would read for `question` in the table rows of `texts` (the passages
    read, best first): in a row whose formula or code name the question quotes ("round(x)":
    the words of that cell then name the row, not the answer), then in a row the question names
    by most of one cell (`CellMatch.named`), then under a column the question names by a word and
    its number ("step 3": of two tables with an AIC row, the one with a step 3), then with the
    most question words in its row's other cells (a word naming the column names no row), then
    in its header, spelled out or abbreviated there ("hp" for horsepower, "NB" for negative
    binomial, "PC2" for the second principal component, σ for a standard deviation; one less when
    the cell itself holds question words: it is then partly what the question names, not what it
    asks), then the header most made of question words ("σ", not "(T − µ)/σ"), then in its
    table's title and nowhere in the row (of two tables with the same rows, the one "aligned on
    the decimal point"), then a one-letter header that is a question word's initial ("V" for
    visual: too loose to count as a header match), then, for a question asking what something
    stands for, means or does, a cell of words ("fraction of an arcsecond", not the symbol "00
    ."), then the cell holding the smaller share of question words (of "(1 | g) ; Meaning:
    Intercept varying among g", the meaning), then the reader's score for it, then the earlier
    passage. A cell holding only question words is the row's name, not its answer; a row naming
    none of the question's words answers nothing."""
    rows_of_passages = [table_rows(text) for text in texts]
    wanted = terms(question) - common_terms(rows_of_passages)
    spoken = _squeezed(question)
    defining = _DEFINING.search(spoken) is not None
    best, best_key, best_row = None, None, (0, 0)
    words_per_row: dict[tuple[int, int], int] = {}  # question words each row read holds, by (passage, row start)
    for index, rows in enumerate(rows_of_passages):
        for row in rows:
            values = row.value_terms()
            words_per_row[index, row.start] = len(wanted & frozenset().union(*values))
            quotes = [_quotes(spoken, row.line[value:end]) for _, value, end in row.fields]
            for column, (_, value, end) in enumerate(row.fields):
                quoted = [values[i] for i, quote in enumerate(quotes) if quote and i != column]
                cell = _cell_match(wanted, row, values, column, index, span_log_probs[index], bool(quoted), spoken)
                if cell is None:
                    continue
                asked = wanted - frozenset().union(*quoted)  # a quoted cell's words name the row, not this cell
                own_share = _share(asked, values[column])
                named_part = bool(asked & values[column])
                log_prob = -float("inf") if cell.reader_log_prob is None else cell.reader_log_prob
                worded = defining and _is_worded(row.line[value:end])
                key = (cell.quoted, cell.named, cell.numbered_column, cell.row_words, cell.header_words - named_part, cell.header_share, cell.title_words, cell.header_initials, worded, -own_share, log_prob, -index)
                if best_key is None or key > best_key:
                    best, best_key, best_row = cell, key, (index, row.start)
    if best is None:
        return None
    mine = words_per_row.pop(best_row)
    return replace(best, best_row=best.quoted or mine > max(words_per_row.values(), default=0))


def _cell_match(
    wanted: frozenset[str], row: TableRow, values: list[frozenset[str]], column: int, passage: int, log_probs: dict[tuple[int, int], float],
    quoted: bool = False, spoken: str = "",
) -> CellMatch | None:  # fmt: skip
    """Cell `column` of `row` scored against the question's words, or None when it cannot be the
    answer: its row's other cells hold none of them and none is `quoted` ("\\table*" names a row
    with no word), or it holds nothing but question words."""
    others = [words for i, words in enumerate(values) if i != column]
    header = row.header(column)
    header_terms = terms(header)
    row_words = len((wanted - header_terms) & frozenset().union(*others))  # a word naming the column ("step 2") names no row
    if not (row_words or quoted) or (values[column] and values[column] <= wanted):
        return None
    _, value, end = row.fields[column]
    acronym = _acronym_words(spoken, header)
    header_words = len(wanted & header_terms) + _abbreviated(wanted - header_terms, header, range(2, MAX_ABBREVIATION + 1)) + (acronym if acronym >= 2 else 0)
    initials = _abbreviated(wanted - header_terms, header, range(1, 2)) + (acronym if acronym == 1 else 0)
    label_share = max((_share(wanted, words) for words in others), default=0.0)
    title_words = len(wanted & terms(row.title) - frozenset().union(*values))
    named_in_header = wanted & header_terms
    numbered = any(word.isdigit() for word in named_in_header) and any(not word.isdigit() for word in named_in_header)
    start, stop = row.start + value, row.start + end
    return CellMatch(
        passage, start, stop, row_words, header_words, log_probs.get((start, stop)), label_share, initials, quoted=quoted, title_words=title_words,
        numbered_column=numbered, header_share=_share(wanted, header_terms),
    )  # fmt: skip


def _share(wanted: frozenset[str], words: frozenset[str]) -> float:
    """The share of `words` that the question's words make up."""
    return len(wanted & words) / len(words) if words else 0.0


def _is_worded(cell: str) -> bool:
    """Whether a cell is a phrase of words ("fraction of an arcsecond"), not a symbol or a number."""
    return sum(len(word) >= 2 for word in _LETTERS.findall(cell)) >= 2


def _squeezed(text: str) -> str:
    return " ".join(text.casefold().split())


def _quotes(spoken: str, cell: str) -> bool:
    """Whether a question (`_squeezed`) holds `cell` whole where the cell is a formula, a call or
    a code name ("round(x)", "x + (x || g)", "legend_resbased()"): symbols a question holds only
    when quoting. A cell of plain words ("kayak") is named by its words (`terms`), not by this."""
    cell = _squeezed(cell)
    if len(cell) < MIN_QUOTE_CHARS or _SYMBOL.search(cell) is None:
        return False
    return re.search(rf"(?:^|(?<=[\s\"'“‘(])){re.escape(cell)}(?=$|[\s\"'”’?.,;:!)])", spoken) is not None  # whole: "\\table" is not in "\\table*"


def _abbreviated(words: frozenset[str], header: str, lengths: range) -> int:
    """How many of the question's `words` a short word of `header` (of one of `lengths` letters)
    abbreviates: its letters in order, from the first ("hp" horsepower, "Resid." residual, "Dev"
    deviance, "V" visual), at least two letters shorter. Words with digits are left out ("PC1"
    abbreviates no "pc2")."""
    shorts = [word for word in _LETTERS.findall(header.casefold()) if len(word) in lengths]
    return sum(
        word.isalpha() and any(len(word) >= len(short) + 2 and word[0] == short[0] and _in_order(short, word) for short in shorts)
        for word in words
    )


def _acronym_words(spoken: str, header: str) -> int:
    """How many question words the acronyms of a header stand for: "NB" for "negative binomial",
    "PC2" for "second principal component", "Q3" for "the third quarter" (the initials of words
    in a row of the question, and the number said there as a digit or an ordinal). A lone
    capital with a number ("Q3") is a weak sign; one without, none."""
    words = re.findall(r"[^\W\d_]+|\d+", spoken)
    numbers = {ORDINALS.get(word, word) for word in words}
    count = 0
    for token in _WORD.findall(header):
        match = _ACRONYM.match(token)
        if match is None or (match.group(2) and match.group(2) not in numbers) or len(match.group()) < 2:
            continue
        letters = match.group(1).casefold()
        if any("".join(word[0] for word in words[i : i + len(letters)]) == letters for i in range(len(words) - len(letters) + 1)):
            count += len(letters)
    return count


def _in_order(letters: str, word: str) -> bool:
    rest = iter(word)
    return all(letter in rest for letter in letters)


def in_table_row(text: str, start: int) -> bool:
    """Whether offset `start` of a passage lies in one of its table rows."""
    return row_line_at(text, start) is not None
