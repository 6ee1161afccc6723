"""The row form every table takes (`rag_qa.ingest.tables`), and answers that fit its cells."""

from __future__ import annotations

import pytest

from rag_qa.ingest.tables import cell_span, grid_lines, row_fields, table_lines
from rag_qa.table_lookup import matching_rows, row_matches

ROW = "Star: α Cen A; Mass M: 1.10; Frequency: 1 in 1,000"
TEXT = f"Table 2. Stars\nStar | Mass M | Frequency\n{ROW}\nStar: δ Pav; Mass M: 0.99; Frequency: 1 in 5\nA note: with a colon; and a semicolon, in a sentence that is much longer than any header would be."


def span_of(text: str, part: str, after: int = 0) -> tuple[int, int]:
    start = text.index(part, after)
    return start, start + len(part)


def test_rows_name_each_cell_and_skip_empty_ones() -> None:
    assert table_lines(["Tool", "Deposit", ""], [["Drill", "", "x"]], title="Table 1") == ["Table 1", "Tool | Deposit", "Tool: Drill; x"]
    assert grid_lines([["Tool", "Fees", "Fees"], ["Drill", "2", "3"], ["", "", ""]]) == ["Tool | Fees", "Tool: Drill; Fees: 2; Fees: 3"]
    assert grid_lines([["a", "b"], ["c", "d"]], header=False) == ["a; b", "c; d"]


def test_a_row_line_is_told_from_prose() -> None:
    assert row_fields(ROW) is not None and len(row_fields(ROW) or []) == 3
    assert row_fields("Cu; rc: 0.800; r0: 14.10") is not None  # a row label without a header
    assert row_fields("A note: with a colon; and a semicolon, in a sentence that is much longer than any header would be.") is None
    assert row_fields("Only one: field") is None


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("1,000", "1 in 1,000"),  # inside a value: the whole value
        ("Mass M: 1.10", "1.10"),  # header and value: the value
        ("1.10", "1.10"),
    ],
)
def test_a_span_in_a_row_becomes_its_cell(part: str, expected: str) -> None:
    start, end = span_of(TEXT, part)
    fitted = cell_span(TEXT, start, end)
    assert fitted is not None and TEXT[fitted[0] : fitted[1]] == expected


@pytest.mark.parametrize("part", ["1.10; Frequency", "; Mass M", "1,000\nStar: δ Pav", "Stars\nStar | Mass M | Frequency\nStar", "Mass M | Frequency"])
def test_a_span_across_cells_onto_a_header_in_the_header_line_or_across_rows_is_no_answer(part: str) -> None:
    assert cell_span(TEXT, *span_of(TEXT, part)) is None


def test_a_span_in_prose_is_left_as_it_is() -> None:
    start, end = span_of(TEXT, "a semicolon")
    assert cell_span(TEXT, start, end) == (start, end)
    wrapped = "The library opens at\nnine on Saturdays."
    assert cell_span(wrapped, 17, 24) == (17, 24)  # a hard-wrapped text file: an answer may cross its lines


def test_the_row_the_question_names_is_the_one_answered_from() -> None:
    other = "Planet: Mars; Frequency: 1 in 3"
    rows, elsewhere = matching_rows(row_matches("What is the frequency of delta Pav?", [TEXT, other]))
    pav = TEXT.index("Star: δ Pav")
    assert rows == frozenset({pav}) and elsewhere == frozenset()
    assert cell_span(TEXT, *span_of(TEXT, "1,000"), rows) is None  # α Cen A's row: not the one asked about
    assert cell_span(other, *span_of(other, "1 in 3"), elsewhere) is None  # a row of another passage naming nothing asked
    fitted = cell_span(TEXT, *span_of(TEXT, "5", pav), rows)
    assert fitted is not None and TEXT[fitted[0] : fitted[1]] == "1 in 5"
    assert matching_rows(row_matches("What is the mass?", [TEXT])) == [None]  # no row named: any row may answer
