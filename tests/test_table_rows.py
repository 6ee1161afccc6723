"""The row form every table takes (`rag_qa.ingest.tables`)."""

from __future__ import annotations

from rag_qa.ingest.tables import grid_lines, table_lines

def test_rows_name_each_cell_and_skip_empty_ones() -> None:
    assert table_lines(["Tool", "Deposit", ""], [["Drill", "", "x"]], title="Table 1") == ["Table 1", "Tool | Deposit", "Tool: Drill; x"]
    assert grid_lines([["Tool", "Fees", "Fees"], ["Drill", "2", "3"], ["", "", ""]]) == ["Tool | Fees", "Tool: Drill; Fees: 2; Fees: 3"]
    assert grid_lines([["a", "b"], ["c", "d"]], header=False) == ["a; b", "c; d"]
