"""Tables in PDFs made of parts: sub-tables under one stack of rules with their own titles and
repeated headers, groups of rows between rules, headers over a double rule and a line of column
numbers (issue 36; each trap seen in a real file of benchmarks/pdf_tables.py). The PDFs are drawn
in the tests (`pdf_table_pages`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_pdf_tables import lines_of

pytest.importorskip("reportlab", reason="the PDF table tests draw their PDFs with reportlab (pip install -e '.[dev]')")
from pdf_table_pages import FONT, SIZE, new_pdf, words  # noqa: E402

from rag_qa.ingest.tables import row_fields  # noqa: E402

COLUMNS = (66, 110, 150, 203, 270, 340)  # Control ends 12 pt (1.2 font sizes) before Early Onset: two columns


def test_sub_tables_keep_their_columns_and_their_titles_and_repeated_headers_head_their_rows(tmp_path: Path) -> None:
    """Two genotype tables stacked under one set of rules (coin's psoriasis data): a centred
    title over two columns ("TNFA_238 locus") neither joins the columns it spans nor the row
    above, and a repeated header with another label ("Female") heads the rows under it."""
    pdf = new_pdf(tmp_path / "loci.pdf")
    y = 780.0

    def row(cells: tuple[str, ...], rule_under: bool = False) -> None:
        nonlocal y
        for x, text in zip(COLUMNS, cells):
            words(pdf, x, y, text)
        if rule_under:
            pdf.line(60, y - 4, 380, y - 4)
        y -= 14

    pdf.line(60, y + 12, 380, y + 12)
    for locus, genotypes in (("IL1B_511 locus", ("CC", "CT", "TT")), ("TNFA_238 locus", ("GG", "GA", "AA"))):
        if locus.startswith("TNFA"):
            words(pdf, 185, y, locus)  # centred over Control and Early Onset
            y -= 14
        for sex, first in (("Male", 170), ("Female", 146)):
            row((sex, "", "Control", "Early Onset", "Late Onset", "Total"), rule_under=True)
            for number, genotype in enumerate(genotypes):
                row(("", genotype, str(first - 10 * number), str(71 - number), str(40 - number), str(281 - number)))
    pdf.line(60, y + 10, 380, y + 10)
    pdf.save()
    lines = lines_of(tmp_path / "loci.pdf")
    assert "GG; Control: 170; Early Onset: 71; Late Onset: 40; Total: 281" in lines, lines
    assert "GG; Control: 146; Early Onset: 71; Late Onset: 40; Total: 281" in lines, lines
    assert lines.index("TNFA_238 locus:") < lines.index("Female:", lines.index("TNFA_238 locus:")) < lines.index("GG; Control: 146; Early Onset: 71; Late Onset: 40; Total: 281")
    assert not any("Control: Control" in line or "TNFA_238" in line and ";" in line for line in lines), lines


def test_a_label_with_numbers_under_a_labelled_row_is_a_row_of_its_own(tmp_path: Path) -> None:
    """Between two rules a group of rows whose estimates carry a standard error on the line under
    them, then statistics rows of one line each (pscl's model table): "log L" under "no.
    parameters" is its own row, though it leaves a column empty, while "(0.024)" stays with its estimate."""
    pdf = new_pdf(tmp_path / "models.pdf")
    rights = (200, 270, 340)

    def line(y: float, label: str, *values: str) -> None:
        words(pdf, 66, y, label)
        for right, value in zip(rights, values):
            if value:
                words(pdf, right - pdf.stringWidth(value, FONT, SIZE), y, value)

    line(800, "Variable", "Poisson", "Quasi", "NB")
    estimates = [("(Intercept)", "1.029", "1.029", "0.929"), ("", "(0.024)", "(0.062)", "(0.055)")]
    estimates += [(name, "0.165", "0.165", "0.218") if line == 0 else ("", "(0.006)", "(0.016)", "(0.020)") for name in ("hosp", "school", "numchron") for line in (0, 1)]
    statistics = [("no. parameters", "8", "8", "9"), ("log L", "−17971.6", "", "−12170.6"), ("AIC", "35959.2", "", "24359.1")]
    y = 786.0
    for group in (estimates, statistics):
        for cells in group:
            line(y, *cells)
            y -= 14
        pdf.line(60, y + 10, 350, y + 10)
    for rule in (812, 796):
        pdf.line(60, rule, 350, rule)
    pdf.save()
    lines = lines_of(tmp_path / "models.pdf")
    assert "Variable: log L; Poisson: −17971.6; NB: −12170.6" in lines, lines
    assert "Variable: no. parameters; Poisson: 8; Quasi: 8; NB: 9" in lines, lines
    assert "Variable: (Intercept); Poisson: 1.029 (0.024); Quasi: 1.029 (0.062); NB: 0.929 (0.055)" in lines, lines


def test_a_header_over_a_double_top_rule_takes_all_its_lines_and_leaves_column_numbers_out(tmp_path: Path) -> None:
    """AASTeX's tables: a double rule on top, a header of two lines and a line of column numbers
    ("(1) (2) ..."), then a rule: the header is the two lines ("Messier Number"), not the first
    alone with the second read as a row."""
    pdf = new_pdf(tmp_path / "messier.pdf")
    columns = (66, 130, 250, 320)
    header = [("Messier", "Object", "Distance", ""), ("Number", "Type", "(kpc)", "Constellation"), ("(1)", "(2)", "(3)", "(4)")]
    rows = [("M7", "Cluster, open", "0.3", "Scorpius"), ("M8", "Nebula with cluster", "1.25", "Sagittarius"), ("M9", "Cluster, globular", "7.91", "Ophiuchus")]
    y = 780.0
    for rule in (y + 14, y + 12):
        pdf.line(60, rule, 420, rule)
    for cells in [*header, *rows]:
        for x, text in zip(columns, cells):
            words(pdf, x, y, text)
        y -= 14
        if cells is header[-1]:
            pdf.line(60, y + 10, 420, y + 10)
    pdf.line(60, y + 10, 420, y + 10)
    pdf.save()
    lines = lines_of(tmp_path / "messier.pdf")
    assert "Messier Number | Object Type | Distance (kpc) | Constellation" in lines, lines
    assert "Messier Number: M8; Object Type: Nebula with cluster; Distance (kpc): 1.25; Constellation: Sagittarius" in lines, lines


def test_units_and_numbers_in_a_header_do_not_make_it_prose() -> None:
    line = "Component: BELs; Shift (km s −1 ): -97.13; Flux (10 −17 erg s −1 cm −2 ) Lyα: 1033±33"
    assert row_fields(line) is not None
    assert row_fields("In this paper we show that: the model of all these sorts of things fits; and more") is None
