"""Tables in PDFs read as a person reads them: each row a line naming every cell by its column's
header, one test per trap real files hold (issue 36). The PDFs are drawn in the tests
(`pdf_table_pages`); real manuals and papers are measured in benchmarks/pdf_tables.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import load_file
from scans import scanned_pdf

pytest.importorskip("reportlab", reason="the PDF table tests draw their PDFs with reportlab (pip install -e '.[dev]')")
from pdf_table_pages import FONT, SIZE, new_pdf, prose, table, words  # noqa: E402

from rag_qa.ingest.ocr import scanned_tables_text, without_rules  # noqa: E402
from rag_qa.ingest.pdf_tables import ROW_BREAK, find_tables  # noqa: E402
from rag_qa.pages import aligned_glyphs  # noqa: E402

LOANS = [["Membership", "Loan fee", "Deposit"], ["Student", "2.50", "10"], ["Adult", "4.00", "25"], ["Business", "9.75", "60"]]


def page_texts(path: Path) -> list[str]:
    document = load_file(path)
    starts = [*document.page_starts, len(document.text)]
    return [document.text[a:b].strip() for a, b in zip(starts, starts[1:])]


def lines_of(path: Path) -> list[str]:
    return [line for text in page_texts(path) for line in text.split("\n")]


@pytest.mark.parametrize("rules", ["grid", "booktabs", "none"])
def test_each_row_names_its_cells_by_their_headers_ruled_booktabs_or_unruled(tmp_path: Path, rules: str) -> None:
    pdf = new_pdf(tmp_path / "fees.pdf")
    y = prose(pdf, 780, ["The library charges a fee for each loan and keeps a deposit until the tool is back."])
    words(pdf, 60, y - 8, "Table 3. Loan fees by membership type")
    table(pdf, 60, y - 20, [140, 90, 90], LOANS, rules=rules)
    prose(pdf, y - 120, ["Fees are reviewed every spring by the volunteers who run the library."])
    pdf.save()
    lines = lines_of(tmp_path / "fees.pdf")
    assert "Table 3. Loan fees by membership type" in lines
    assert "Membership | Loan fee | Deposit" in lines
    assert "Membership: Adult; Loan fee: 4.00; Deposit: 25" in lines
    assert "Membership: Business; Loan fee: 9.75; Deposit: 60" in lines
    assert any(line.startswith("The library charges a fee") for line in lines)  # the prose around it stays prose
    assert any(line.startswith("Fees are reviewed every spring") for line in lines)


def test_words_without_space_glyphs_stay_apart_in_prose_and_cells(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "tex.pdf")
    prose(pdf, 780, ["Only one in a thousand tools is ever lost for good."])
    table(pdf, 60, 740, [160, 160], [["Tool kind", "Replacement time"], ["Cordless drill", "two working weeks"], ["Ladder", "one month or more"]], rules="booktabs")
    pdf.save()
    text = "\n".join(page_texts(tmp_path / "tex.pdf"))
    assert "Only one in a thousand tools" in text
    assert "Tool kind: Cordless drill; Replacement time: two working weeks" in text


def test_a_cell_on_several_lines_is_one_cell(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "multi.pdf")
    rows = [["Tool", "Rule"], ["Drill", "Return it charged\nand with its case"], ["Ladder", "Two people carry it"]]
    table(pdf, 60, 780, [120, 220], rows, rules="grid")
    pdf.save()
    assert "Tool: Drill; Rule: Return it charged and with its case" in lines_of(tmp_path / "multi.pdf")


def test_a_right_aligned_number_does_not_cut_its_header_word(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "mean.pdf")
    rows = [["Site", "Mean", "Count"], ["North", "1234.56", "7"], ["South", "3.1", "12345"], ["East", "87.25", "310"]]
    table(pdf, 60, 780, [100, 70, 70], rows, rules="none", right_align=(1, 2))
    words(pdf, 60, 700, "Table 1: Visits per site")
    pdf.save()
    lines = lines_of(tmp_path / "mean.pdf")
    assert "Site: South; Mean: 3.1; Count: 12345" in lines, lines


def test_a_header_cell_spanning_columns_names_each_of_them(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "span.pdf")
    pdf.line(60, 780, 400, 780)
    for label, middle in (("Model A", 220), ("Model B", 340)):  # centred over its two columns (\\multicolumn)
        words(pdf, middle - pdf.stringWidth(label, FONT, SIZE) / 2, 768, label)
    pdf.line(150, 762, 260, 762)
    pdf.line(280, 762, 390, 762)
    table(pdf, 60, 760, [100, 60, 60, 60, 60], [["Dataset", "Mean", "SD", "Mean", "SD"], ["Alpha", "0.91", "0.02", "0.87", "0.03"], ["Beta", "0.78", "0.05", "0.80", "0.04"]], rules="booktabs", top_rule=False)
    pdf.save()
    lines = lines_of(tmp_path / "span.pdf")
    assert "Dataset: Beta; Model A Mean: 0.78; Model A SD: 0.05; Model B Mean: 0.80; Model B SD: 0.04" in lines, lines


def test_a_bar_chart_is_not_a_table(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "chart.pdf")
    prose(pdf, 790, ["Loans per month, as a chart."])
    months = ["Jan", "Feb", "Mar", "Apr", "May"]
    for i, height in enumerate([40, 80, 60, 120, 90]):
        pdf.rect(80 + 60 * i, 600, 30, height, fill=1)
        words(pdf, 82 + 60 * i, 585, months[i])
        words(pdf, 82 + 60 * i, 605 + height, str(height))
    for tick in range(0, 140, 40):  # the axis: tick labels stacked in a column, as a plot's are
        words(pdf, 50, 597 + tick, str(tick))
    pdf.save()
    assert all(month in " ".join(page_texts(tmp_path / "chart.pdf")) for month in months)
    assert not any(": " in line for line in lines_of(tmp_path / "chart.pdf")[1:])


def test_a_table_continued_on_the_next_page_gets_its_header_there(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "long.pdf")
    header = ["Part number", "Item", "Price"]
    rows = [[f"P-{n:03d}", f"Spare {name}", f"{n * 1.5:.2f}"] for n, name in enumerate(["blade", "chuck", "filter", "belt"], 1)]
    words(pdf, 60, 790, "Table 5. Spare parts")
    table(pdf, 60, 780, [120, 160, 80], [header, *rows], rules="booktabs")
    pdf.showPage()
    more = [[f"P-{n:03d}", f"Spare {name}", f"{n * 1.5:.2f}"] for n, name in enumerate(["hose", "nozzle", "brush"], 5)]
    table(pdf, 60, 800, [120, 160, 80], more, rules="booktabs")
    prose(pdf, 700, ["Prices include tax and are valid until the end of the year."])
    pdf.save()
    second = page_texts(tmp_path / "long.pdf")[1].split("\n")
    assert "Part number: P-006; Item: Spare nozzle; Price: 9.00" in second, second
    assert "Table 5. Spare parts (continued)" in second


def test_a_footnote_mark_is_not_glued_to_its_value(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "marks.pdf")
    table(pdf, 60, 780, [120, 120], [["Element", "Share"], ["Tin", "12.5"], ["Lead", "3.0"], ["Zinc", "0.4"]], rules="booktabs")
    pdf.setFont(FONT, 6)
    pdf.drawString(60 + 6 + pdf.stringWidth("Tin", FONT, SIZE), 780 - 14 - 10 + 4, "a")  # Tin^a
    pdf.save()
    lines = lines_of(tmp_path / "marks.pdf")
    assert any(line.startswith("Element: Tin a; Share: 12.5") for line in lines), lines


def test_two_tables_side_by_side_stay_two_tables(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "pair.pdf")
    table(pdf, 40, 780, [90, 80], [["Tool", "Deposit"], ["Drill", "30"], ["Saw", "20"]], rules="grid")
    table(pdf, 300, 780, [90, 80], [["Room", "Capacity"], ["Hall", "120"], ["Lab", "16"]], rules="grid")
    pdf.save()
    lines = lines_of(tmp_path / "pair.pdf")
    assert "Tool: Saw; Deposit: 20" in lines and "Room: Lab; Capacity: 16" in lines, lines


@pytest.mark.parametrize("rules", ["grid", "booktabs"])
@pytest.mark.parametrize("turn", [90, -90])
def test_a_rotated_table_is_read_in_its_own_direction(tmp_path: Path, turn: int, rules: str) -> None:
    """Text running up or down the page (LaTeX's sidewaystable) is read in its own frame; its
    rules must be found in that frame too (a turned frame below the page's origin lost them)."""
    pdf = new_pdf(tmp_path / "landscape.pdf")
    pdf.translate(400, 100) if turn == 90 else pdf.translate(100, 700)
    pdf.rotate(turn)
    table(pdf, 0, 0, [160, 90, 90], [["Membership type", "Loan fee", "Deposit"], *LOANS[1:], ["Family of four or more", "6.00", "40"]], rules=rules)
    pdf.save()
    lines = lines_of(tmp_path / "landscape.pdf")
    assert "Membership type: Adult; Loan fee: 4.00; Deposit: 25" in lines, lines
    assert "Membership type: Family of four or more; Loan fee: 6.00; Deposit: 40" in lines, lines


def test_prose_in_two_columns_is_not_a_table(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "columns.pdf")
    left = ["The tool library opened in spring with", "forty drills and a dozen ladders, lent", "free of charge to every member who", "signs the safety sheet at the desk."]
    right = ["Volunteers check each returned tool", "before it goes back on the shelf, and", "broken ones are sent for repair at the", "end of every month by the treasurer."]
    prose(pdf, 780, left, x=50)
    prose(pdf, 780, right, x=310)
    pdf.save()
    text = " ".join(page_texts(tmp_path / "columns.pdf"))
    assert ": " not in text and "lent free of charge" in text


def test_an_answer_from_a_cell_is_boxed_on_that_cell(tmp_path: Path) -> None:
    path = tmp_path / "fees.pdf"
    pdf = new_pdf(path)
    table(pdf, 60, 780, [140, 90, 90], LOANS, rules="grid")
    pdf.save()
    text = page_texts(path)[0]
    start = text.index("9.75")
    glyphs, glyph_of = aligned_glyphs(str(path), 1, text)
    boxes = [glyphs.boxes[glyph_of[i]] for i in range(start, start + 4)]
    assert all(box is not None for box in boxes)
    left, bottom = min(b[0] for b in boxes), min(b[1] for b in boxes)  # type: ignore[index]
    right, top = max(b[2] for b in boxes), max(b[3] for b in boxes)  # type: ignore[index]
    assert 200 <= left and right <= 290 and 780 - 4 * 14 <= bottom and top <= 780 - 3 * 14  # the Business row's fee cell


def test_find_tables_reports_where_each_table_is(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    from rag_qa.ingest.pdf_layout import read_layout

    pdf = new_pdf(tmp_path / "fees.pdf")
    table(pdf, 60, 780, [140, 90, 90], LOANS, rules="grid")
    pdf.save()
    document = pdfium.PdfDocument(str(tmp_path / "fees.pdf"))
    page = document[0]
    (found,) = find_tables(read_layout(page, page.get_textpage()))
    assert found.header == ("Membership", "Loan fee", "Deposit") and len(found.rows) == 3
    assert abs(found.box[0] - 60) < 2 and abs(found.box[2] - 380) < 2


def test_a_table_reads_alike_in_a_pdf_a_word_file_a_workbook_and_a_web_page(tmp_path: Path) -> None:
    import docx
    import openpyxl

    pdf = new_pdf(tmp_path / "fees.pdf")
    table(pdf, 60, 780, [140, 90, 90], LOANS, rules="grid")
    pdf.save()
    word = docx.Document()
    grid = word.add_table(rows=len(LOANS), cols=3)
    for r, row in enumerate(LOANS):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    word.save(str(tmp_path / "fees.docx"))
    book = openpyxl.Workbook()
    for row in LOANS:
        book.active.append(row)
    book.save(str(tmp_path / "fees.xlsx"))
    cells = "".join("<tr>" + "".join(f"<{tag}>{v}</{tag}>" for v in row) + "</tr>" for row, tag in zip(LOANS, ["th", "td", "td", "td"]))
    (tmp_path / "fees.html").write_text(f"<html><body><table>{cells}</table></body></html>")
    expected = ["Membership | Loan fee | Deposit", *[f"Membership: {a}; Loan fee: {b}; Deposit: {c}" for a, b, c in LOANS[1:]]]
    for name in ("fees.pdf", "fees.docx", "fees.xlsx", "fees.html"):
        lines = load_file(tmp_path / name).text.split("\n")
        start = lines.index(expected[0])
        assert lines[start : start + 4] == expected, (name, lines)


def test_a_table_without_a_top_rule_takes_the_line_above_its_first_rule_as_header(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "no-top-rule.pdf")
    words(pdf, 60, 800, "Table 3: Melanoma data.")
    table(pdf, 60, 785, [90, 70, 70], [["Genotype", "In situ", "Control"], ["AA", "6", "32"], ["AG", "8", "47"], ["GG", "10", "20"]], rules="booktabs", top_rule=False)
    pdf.save()
    lines = lines_of(tmp_path / "no-top-rule.pdf")
    assert "Genotype | In situ | Control" in lines and "Genotype: AG; In situ: 8; Control: 47" in lines, lines


def test_a_table_set_in_two_halves_under_one_repeated_header_is_read_half_after_half(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "halves.pdf")
    rows = [["Element", "Share", "Element", "Share"], ["Tin", "12.5", "Lead", "3.0"], ["Zinc", "0.4", "Gold", "1.1"], ["Iron", "7.7", "", ""]]
    table(pdf, 60, 780, [80, 60, 80, 60], rows, rules="booktabs")
    pdf.save()
    lines = [line for line in lines_of(tmp_path / "halves.pdf") if line.startswith("Element:")]
    assert lines == ["Element: Tin; Share: 12.5", "Element: Zinc; Share: 0.4", "Element: Iron; Share: 7.7", "Element: Lead; Share: 3.0", "Element: Gold; Share: 1.1"]


def test_a_two_line_header_close_above_the_midrule_names_each_column_once(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "two-line-header.pdf")
    rows = [["Pool\niterations", "Pool\nchains", "Output files"], ["no", "no", "CODAindex.txt"], ["yes", "yes", "CODAtable0.txt"]]
    table(pdf, 60, 780, [80, 80, 140], rows, rules="booktabs", pitch=12)  # the midrule is not a rule under a spanning cell
    pdf.save()
    lines = lines_of(tmp_path / "two-line-header.pdf")
    assert "Pool iterations: yes; Pool chains: yes; Output files: CODAtable0.txt" in lines, lines


def test_formulas_with_spaced_symbols_stay_whole_cells(tmp_path: Path) -> None:
    """TeX sets a binary operator with wide space around it, so every row leaves the same gaps
    open inside a column of formulas; and a row of many symbols is not a line of prose."""
    pdf = new_pdf(tmp_path / "formulas.pdf")
    rows = [("Formula", "Alternative", "Meaning"), ("(1 | g)", "1 + (1 | g)", "Random intercept"),
            ("0 + offset(o) + (1 | g)", "-1 + offset(o) + (1 | g)", "Known means"), ("x + (x || g)", "1 + x + (1 | g) + (0 + x | g)", "Uncorrelated slope")]  # fmt: skip
    pdf.line(60, 790, 520, 790)
    for number, (formula, alternative, meaning) in enumerate(rows):
        y = 778 - 16 * number
        for x, text in ((66, formula), (216, alternative), (400, meaning)):
            for token in text.split():  # a math token, then a 6-point space
                pdf.drawString(x, y, token)
                x += pdf.stringWidth(token, FONT, SIZE) + (6.0 if number else 0.33 * SIZE)
        if number == 0:
            pdf.line(60, y - 5, 520, y - 5)
    pdf.line(60, 778 - 16 * len(rows) + 8, 520, 778 - 16 * len(rows) + 8)
    pdf.save()
    lines = lines_of(tmp_path / "formulas.pdf")
    assert "Formula: 0 + offset(o) + (1 | g); Alternative: -1 + offset(o) + (1 | g); Meaning: Known means" in lines, lines
    assert "Formula: x + (x || g); Alternative: 1 + x + (1 | g) + (0 + x | g); Meaning: Uncorrelated slope" in lines, lines


def test_rows_grouped_between_rules_are_read_row_by_row_with_their_group_label(tmp_path: Path) -> None:
    """Rules part groups of rows, not rows; a description wraps inside its column, and the group's
    label ("GLM") stands on the group's first row only."""
    pdf = new_pdf(tmp_path / "groups.pdf")
    lines = [
        ("Type", "Method", "Description"),
        ("GLM", "ML", "Poisson regression: classical GLM, estimated by"), ("", "", "maximum likelihood"),
        ("", "quasi", "quasi-Poisson regression: same mean function, but"), ("", "", "with an estimated dispersion"),
        ("", "adjusted", "adjusted Poisson regression: the same mean, with"), ("", "", "sandwich covariances"),
        ("zero-augmented", "ML", "zero-inflated Poisson (ZIP), hurdle Poisson"), ("", "ML", "zero-inflated NB (ZINB), hurdle NB"),
    ]  # fmt: skip
    y = 780
    pdf.line(60, y + 12, 500, y + 12)
    for number, cells in enumerate(lines):
        for x, text in zip((66, 156, 226), cells):
            words(pdf, x, y, text)
        if number in (0, 6):  # under the header, and between the two groups
            pdf.line(60, y - 4, 500, y - 4)
        y -= 14
    pdf.line(60, y + 10, 500, y + 10)
    pdf.save()
    rows = [line for line in lines_of(tmp_path / "groups.pdf") if line.startswith("Type:")]
    assert rows == [
        "Type: GLM; Method: ML; Description: Poisson regression: classical GLM, estimated by maximum likelihood",
        "Type: GLM; Method: quasi; Description: quasi-Poisson regression: same mean function, but with an estimated dispersion",
        "Type: GLM; Method: adjusted; Description: adjusted Poisson regression: the same mean, with sandwich covariances",
        "Type: zero-augmented; Method: ML; Description: zero-inflated Poisson (ZIP), hurdle Poisson",
        "Type: zero-augmented; Method: ML; Description: zero-inflated NB (ZINB), hurdle NB",
    ], rows


def test_columns_inside_a_ruled_group_are_split_and_named_by_the_groups_label(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "ruled-groups.pdf")
    header = [("Variable", 66, 800), ("GLM", 215, 800), ("Hurdle", 355, 800), ("Poisson", 166, 786), ("NB", 256, 786), ("NB", 356, 786)]
    for text, x, y in header:
        words(pdf, x, y, text)
    for number, (name, *values) in enumerate([("hosp", "0.165", "0.218", "0.212"), ("numchron", "0.147", "0.175", "0.126"), ("school", "0.026", "0.027", "0.021")]):
        y = 766 - 14 * number
        for x, text in zip((66, 166, 256, 356), (name, *values)):
            words(pdf, x, y, text)
    for y in (812, 778, 724):
        pdf.line(60, y, 420, y)
    for x in (60, 150, 320, 420):  # rules around the label column and each group of models
        pdf.line(x, 812, x, 724)
    pdf.save()
    lines = lines_of(tmp_path / "ruled-groups.pdf")
    assert "Variable: numchron; GLM Poisson: 0.147; GLM NB: 0.175; Hurdle NB: 0.126" in lines, lines


def test_a_caption_whose_label_stands_apart_is_read_whole(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "caption.pdf")
    table(pdf, 60, 780, [120, 120], [["Element", "Share"], ["Tin", "12.5"], ["Lead", "3.0"]], rules="booktabs")
    words(pdf, 60, 720, "Table 1:")
    words(pdf, 110, 720, "Shares of the metals in the")  # TeX sets a wider space after the label
    words(pdf, 60, 708, "alloy, by weight.")
    pdf.save()
    assert "Table 1: Shares of the metals in the alloy, by weight." in lines_of(tmp_path / "caption.pdf")


def test_a_description_column_wider_than_most_of_the_table_is_not_prose(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "methods.pdf")
    rows = [["Generic", "Brief description of return value"], ["ngrps", "Number of levels in each grouping factor."],
            ["VarCorr", "Estimated random-effects variances, standard deviations, and correlations."], ["vcov", "Covariance matrix of the fixed-effect estimates."]]  # fmt: skip
    table(pdf, 60, 780, [60, 345], rows, rules="booktabs")  # the description runs across most of the table
    pdf.save()
    lines = lines_of(tmp_path / "methods.pdf")
    assert "Generic: VarCorr; Brief description of return value: Estimated random-effects variances, standard deviations, and correlations." in lines, lines


def test_margin_line_numbers_are_not_read_into_the_text_but_a_tables_row_numbers_are(tmp_path: Path) -> None:
    """A journal's review layout numbers every line in the margin, in small type ("… page. 226 The
    old way …" ran into the text); a table's own row numbers, leftmost on their page and set in the
    text's size, are data and stay."""
    pdf = new_pdf(tmp_path / "review.pdf")
    lines = ["The old way of measuring the angle used a plumb line.", "The new way uses a digital level on the rail.",
             "Both agree within half a degree on a dry day.", "On a wet day the plumb line swings in the wind.",
             "We therefore recommend the digital level.", "It costs less than a replacement ladder."]  # fmt: skip
    y = 780.0
    for number, line in enumerate(lines, start=224):
        words(pdf, 28, y, str(number), size=6)
        words(pdf, 60, y, line)
        y -= 1.2 * SIZE
    pdf.showPage()
    table(pdf, 60, 780, [40, 60, 60], [["Row", "Angle", "Error"], *[[str(i), f"7{i}.5", f"0.{i}"] for i in range(1, 8)]], rules="none")
    pdf.save()
    first, second = page_texts(tmp_path / "review.pdf")
    assert not any(str(number) in first for number in range(224, 230)), first
    assert "plumb line. The new way uses" in first, first
    assert "Row: 3; Angle: 73.5; Error: 0.3" in second.split("\n")


def test_a_table_among_ocr_words_is_read_as_rows() -> None:
    """Tesseract gives words with boxes (page fractions, y down) and reads a table column by
    column, in blocks; the rows come back from the boxes, as on a digital page."""
    cells = [["Membership", "Deposit"], ["Student", "10"], ["Adult", "25"], ["Business", "60"]]
    text, words = "", []
    for column, left in enumerate((0.1, 0.5)):  # column by column, a blank line between blocks
        for row, line in enumerate(cells):
            start = len(text)
            text += line[column] + "\n"
            top = 0.1 + 0.03 * row
            words.append((start, start + len(line[column]), left, top, left + 0.015 * len(line[column]), top + 0.018))
        text += "\n"
    tables_text = scanned_tables_text(text.strip(), tuple(words), 595.0, 842.0)
    assert "Membership: Adult; Deposit: 25" in tables_text.replace(ROW_BREAK, "\n").split("\n"), tables_text
    assert scanned_tables_text("Just one line of prose.", ((0, 4, 0.1, 0.1, 0.15, 0.12),), 595.0, 842.0) == ""


def test_ruling_lines_are_erased_before_ocr_and_strokes_of_letters_stay() -> None:
    """Tesseract takes a ruled table's cells for pictures and reads none of their words."""
    np = pytest.importorskip("numpy")
    from PIL import Image

    pixels = np.full((200, 300), 255, dtype=np.uint8)
    pixels[50:52, 10:290] = 0  # a rule across the table
    pixels[20:180, 150:152] = 0  # a rule down it
    pixels[100:130, 40:43] = 0  # the stem of a letter, 30 pixels tall
    pixels[140:142, 60:80] = 0  # the bar of a "T"
    cleaned = np.asarray(without_rules(Image.fromarray(pixels), 100))
    assert (cleaned[50:52, 10:290] == 255).all() and (cleaned[20:180, 150:152] == 255).all()
    assert (cleaned[100:130, 40:43] == 0).all() and (cleaned[140:142, 60:80] == 0).all()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)")
@pytest.mark.parametrize("rules", ["none", "grid"])
def test_a_scanned_table_keeps_its_rows(tmp_path: Path, rules: str) -> None:
    pdf = new_pdf(tmp_path / "fees.pdf")
    y = prose(pdf, 780, ["The library charges a fee for each loan and keeps a deposit until the tool is back."])
    table(pdf, 60, y - 20, [140, 90, 90], LOANS, rules=rules)
    pdf.save()
    lines = lines_of(scanned_pdf(tmp_path / "fees.pdf", tmp_path / "scan.pdf"))
    assert "Membership: Adult; Loan fee: 4.00; Deposit: 25" in lines, lines
    assert any(line.startswith("The library charges a fee") for line in lines), lines


JOURNALS = [["\\aj", "AJ", "The Astronomical Journal"], ["\\apj", "ApJ", "The Astrophysical Journal"], ["\\mnras", "MNRAS", "Monthly Notices"],
            ["\\pasp", "PASP", "Publications of the ASP"], ["\\sci", "Science", "Science"], ["\\nat", "Nature", "Nature"]]  # fmt: skip


def test_a_tight_table_keeps_a_column_one_cell_nearly_touches(tmp_path: Path) -> None:
    """LaTeX's tabular leaves little between columns: one row's "J. Quant. Spectrosc. Radiative
    Transfer" ends 4 pt before the next column, less than a column gap (mnras' journal table).
    Every other row starts a word at that column's left edge: it is still a column."""
    pdf = new_pdf(tmp_path / "tight.pdf")
    long = "J. Quant. Spectrosc. Radiative Transfer"
    rows = [["Command", "Output", "Journal name"], *JOURNALS[:3], ["\\jqsrt", long, "Journal of Quantitative Spectroscopy"], *JOURNALS[3:]]
    table(pdf, 60, 780, [60, pdf.stringWidth(long, FONT, SIZE) + 4, 200], rows, rules="booktabs")
    pdf.save()
    lines = lines_of(tmp_path / "tight.pdf")
    assert f"Command: \\jqsrt; Output: {long}; Journal name: Journal of Quantitative Spectroscopy" in lines, lines
    assert "Command: \\apj; Output: ApJ; Journal name: The Astrophysical Journal" in lines, lines


def test_a_ruled_table_taller_than_half_the_page_is_a_table(tmp_path: Path) -> None:
    pdf = new_pdf(tmp_path / "long.pdf")
    rows = [["Command", "Output", "Journal name"], *[[f"\\j{i}", f"J{i}", f"Journal number {i}"] for i in range(45)]]
    table(pdf, 60, 800, [80, 80, 200], rows, rules="booktabs")
    pdf.save()
    lines = lines_of(tmp_path / "long.pdf")
    assert "Command: \\j30; Output: J30; Journal name: Journal number 30" in lines, lines[:5]
