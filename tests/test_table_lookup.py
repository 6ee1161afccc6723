"""A table cell answered as a person reads a table: the row the question names, the column it
asks for (`rag_qa.table_lookup`), put first among the answers by `answer.combine`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers import READER, needs_shared

from rag_qa.answer import combine
from rag_qa.config import ScoringConfig
from rag_qa.reader import PassageReading, Span
from rag_qa.records import Passage, SearchHit
from rag_qa.table_lookup import best_cell, table_rows, terms

STARS = "Table 3. Stars\nStar | Mass | Luminosity\nStar: α Cen A; Mass: 1.10; Luminosity: 1.52\nStar: δ Pav; Mass: 0.99; Luminosity: 1.22\nStar: ε Eri; Mass: 0.82; Luminosity: 0.34"
PROSE = "The survey measured each star twice. Its luminosity was 0.5 in the first night."


def cell_text(question: str, texts: list[str], log_probs: list[dict] | None = None) -> str | None:
    cell = best_cell(question, texts, log_probs or [{} for _ in texts])
    return None if cell is None else texts[cell.passage][cell.start : cell.end]


def test_the_cell_is_in_the_row_the_question_names_under_the_column_it_asks_for() -> None:
    assert cell_text("What is the luminosity of δ Pav?", [PROSE, STARS]) == "1.22"
    assert cell_text("What is the luminosity of delta Pav?", [STARS]) == "1.22"  # a Greek letter spelled out
    assert cell_text("What mass does alpha Cen A have?", [STARS]) == "1.10"
    cell = best_cell("What is the luminosity of δ Pav?", [STARS], [{}])
    assert cell is not None and cell.strong and cell.row_words == 2 and cell.header_words == 1


def test_a_question_naming_no_row_gets_no_cell() -> None:
    assert best_cell("What is the luminosity of the Sun?", [STARS, PROSE], [{}, {}]) is None
    assert best_cell("What is the luminosity of δ Pav?", [PROSE], [{}]) is None  # no table read at all


def test_the_cell_that_names_the_row_is_not_its_answer() -> None:
    # "Which star has mass 0.82?" names ε Eri's row by its mass; the answer is the star, not 0.82
    assert cell_text("Which star has a mass of 0.82?", [STARS]) == "ε Eri"


def test_a_word_every_row_holds_names_no_row() -> None:
    types = "GSL | RcppGSL\n" + "\n".join(f"GSL: gsl_vector_{t}; RcppGSL: RcppGSL::vector<{t}>" for t in ("int", "short", "uint", "long"))
    # "gsl" and "vector" are in every row; "uint" only in one
    assert cell_text("Which RcppGSL template corresponds to the GSL type gsl_vector_uint?", [types]) == "RcppGSL::vector<uint>"


def test_the_readers_score_breaks_a_tie_between_cells() -> None:
    row_start = STARS.index("Star: δ Pav")
    mass, luminosity = STARS.index("0.99", row_start), STARS.index("1.22", row_start)
    question = "What figure is given for δ Pav?"  # names the row, no column
    assert cell_text(question, [STARS], [{(luminosity, luminosity + 4): -1.0, (mass, mass + 4): -3.0}]) == "1.22"
    assert cell_text(question, [STARS], [{(luminosity, luminosity + 4): -3.0, (mass, mass + 4): -1.0}]) == "0.99"


def test_question_words_are_compared_without_case_plural_or_greek_script() -> None:
    assert terms("Luminosities of κ Stars") >= {"luminosit", "kappa", "star"}
    assert "what" not in terms("What is the value?")


def _hit(text: str, id_: str, score: float) -> SearchHit:
    return SearchHit(Passage(id_, text, "stars.pdf", 0, page=1), score)


def test_combine_puts_the_named_cell_first_and_leaves_prose_answers_alone() -> None:
    hits = [_hit(PROSE, "prose", 0.6), _hit(STARS, "stars", 0.5)]
    wrong = STARS.index("1.52")
    readings = [
        PassageReading(0.0, (Span(PROSE.index("0.5"), PROSE.index("0.5") + 3, "0.5", 6.0, math.log(0.6)),)),
        PassageReading(0.0, (Span(wrong, wrong + 4, "1.52", 5.0, math.log(0.5)),)),
    ]
    result = combine("What is the luminosity of δ Pav?", hits, readings, ScoringConfig(answer_threshold=0.0), 0.05)
    assert [a.text for a in result.answers][:2] == ["1.22", "0.5"]
    top = result.answers[0]
    assert STARS[top.start : top.end] == "1.22" and top.page == 1  # offsets index the document's text
    prose_only = combine("How often was each star measured?", hits[:1], readings[:1], ScoringConfig(answer_threshold=0.0), 0.05)
    assert [a.text for a in prose_only.answers] == ["0.5"]  # no table read: the reader's ranking as it was


@pytest.mark.integration
def test_a_table_in_a_pdf_is_answered_from_its_cells_and_boxed_there(tmp_path: Path) -> None:
    """End to end with the offline reader: a PDF page with prose and a ruled table."""
    needs_shared(READER)
    pytest.importorskip("reportlab", reason="the PDF is drawn with reportlab (pip install -e '.[dev]')")
    from pdf_table_pages import new_pdf, prose, table

    from rag_qa import RagQA

    path = tmp_path / "fees.pdf"
    pdf = new_pdf(path)
    y = prose(pdf, 800, ["The library opens at nine on weekdays and at ten on Saturdays.", "Table 1. Loan fees by membership type"])
    rows = [["Membership", "Loan fee", "Deposit"], ["Student", "2.50", "10"], ["Adult", "4.00", "25"], ["Business", "9.75", "60"]]
    table(pdf, 60, y - 10, [140, 90, 90], rows, rules="grid")
    pdf.save()
    with RagQA.open(tmp_path / "index", reader=str(READER), answer_policy="eager") as qa:
        qa.index([path])
        deposit, fee, opening = qa.ask_many(["What deposit does a business membership need?", "What loan fee does a student pay?", "When does the library open on Saturdays?"])
        assert deposit.answers[0].text == "60" and fee.answers[0].text == "2.50"
        assert "ten" in opening.answers[0].text  # a prose question still gets its prose answer
        boxes = qa.answer_boxes(deposit.answers[0])
    width = 595.27  # A4, in points: boxes are fractions of the page
    assert len(boxes) == 1 and boxes[0].page == 1
    assert 60 + 140 + 90 <= boxes[0].left * width and boxes[0].right * width <= 60 + 140 + 90 + 90  # inside the Deposit column


def test_a_section_line_names_the_rows_under_it_and_numbers_are_whole_words() -> None:
    steps = (
        "Start | Step 1 | Step 2\nReported by the authors:\nAIC; Start: 1872.1; Step 1: 407.6; Step 2: 760.4\nBIC; Start: 1882.8; Step 1: 412.9; Step 2: 781.7\n"
        "Correct calculations:\nAIC; Start: 3915.8; Step 1: 3916.7; Step 2: 3896.5\nBIC; Start: 3947.8; Step 1: 3943.4; Step 2: 3939.2"
    )
    assert cell_text("What is the correctly calculated BIC at step 1?", [steps]) == "3943.4"
    assert cell_text("What AIC did the authors report for step 2?", [steps]) == "760.4"
    assert "1" not in terms("AIC 1872.1")  # "1872.1" is one word: it names no step 1


def test_a_question_asking_what_something_means_reads_the_meaning_column() -> None:
    methods = "Method | Section | Meaning\nMethod: ngrps; Section: 5.2.4; Meaning: Number of levels in each grouping factor\nMethod: VarCorr; Section: 5.2.2; Meaning: Estimated random-effects variances"
    assert cell_text("What does ngrps mean?", [methods]) == "Number of levels in each grouping factor"


def test_a_row_is_named_by_most_of_a_cell_not_by_a_word_in_a_longer_one() -> None:
    fees = "Tool | Deposit | Late fee\nTool: Drill; Deposit: 20 dollars; Late fee: 2 dollars a day\nTool: Saw; Deposit: 15 dollars; Late fee: 1 dollar a day"
    days = best_cell("How many days can members borrow tools for?", [fees], [{}])
    assert days is not None and not days.strong  # "day" stands in the fee cells: no row is named
    drill = best_cell("What is the late fee for the drill?", [fees], [{}])
    assert drill is not None and drill.strong and fees[drill.start : drill.end] == "2 dollars a day"


def test_a_row_named_without_its_column_overrules_only_an_unsure_reader() -> None:
    deck = "Tool | Deposit\nTool: Drill; Deposit: 30 euros\nTool: Kayak; Deposit: 80 euros"
    notes = "Every kayak is lent with a life jacket at no charge."
    hits = [_hit(notes, "notes", 0.6), _hit(deck, "deck", 0.5)]
    jacket = notes.index("a life jacket")

    def top(log_prob: float) -> str:
        readings = [PassageReading(0.0, (Span(jacket, jacket + 13, "a life jacket", 5.0, log_prob),)), PassageReading(0.0, ())]
        return combine("What is lent with every kayak?", hits, readings, ScoringConfig(answer_threshold=0.0, retrieval_weight=0.0), 0.05).answers[0].text

    assert top(math.log(0.6)) == "a life jacket"  # the reader is sure: the notes answer
    assert top(math.log(0.01)) == "80 euros"  # the reader is unsure: the only row the question names


def test_a_row_named_by_its_label_beats_one_holding_more_loose_words() -> None:
    generics = (
        "Generic | Return value\nGeneric: ngrps (5.2.2); Return value: Number of levels in each grouping factor.\n"
        "Generic: weights; Return value: Prior weights of a fitted model, or the model's working weights.\n"
        "Generic: nobs; Return value: Number of observations."
    )
    # "fitted" and "model" stand in the weights row's long cell; "ngrps" is most of a cell of its own row
    assert cell_text("What does the ngrps method return for a fitted merMod model?", [generics]) == "Number of levels in each grouping factor."


def test_a_header_abbreviating_a_question_word_names_the_column() -> None:
    cars = "Car | mpg | cyl | hp\nDatsun 710; mpg: 22.8; cyl: 4; hp: 93\nValiant; mpg: 18.1; cyl: 6; hp: 105"
    assert cell_text("What is the horsepower of the Datsun 710?", [cars]) == "93"
    deviance = "Term | Df | Deviance | Resid. Df | Resid. Dev\ngrade; Df: 1; Deviance: 1.73; Resid. Df: 95; Resid. Dev: 80.52"
    assert cell_text("What residual deviance remains after grade is added?", [deviance]) == "80.52"
    components = "PC1 | PC2\nProportion of Variance; PC1: 0.9655; PC2: 0.0278\nCumulative Proportion; PC1: 0.9655; PC2: 0.9933"
    assert cell_text("What proportion of the variance does PC2 explain?", [components]) == "0.0278"  # "PC1" abbreviates no "pc2"


def test_of_two_cells_under_named_columns_the_one_less_made_of_question_words_answers() -> None:
    links = (
        "Link function | Description | Inverse\nLink function: probit(y) <- x; Description: Probit; Inverse: y <- phi(x)\n"
        "Link function: logit(y) <- x; Description: Logit; Inverse: y <- ilogit(x)"
    )
    assert cell_text("What is the inverse of the probit link function?", [links]) == "y <- phi(x)"


def test_a_row_standing_out_from_the_others_read_is_the_best_row() -> None:
    spacings = (
        "Group | Generator | Description\nGroup: spacing; Generator: spacing_equal(); Description: equal spacing for all dimensions\n"
        "Group: spacing; Generator: spacing_increase(); Description: increasing spacing for the dimensions\n"
        "Group: shading; Generator: shading_hsv(); Description: colors of all cells"
    )
    cell = best_cell("Which spacing function gives equal spacing for all dimensions?", [spacings], [{}])
    assert cell is not None and cell.best_row and spacings[cell.start : cell.end] == "spacing_equal()"
    tie = best_cell("Which generator belongs to the spacing group?", [spacings], [{}])
    assert tie is not None and not tie.best_row  # two rows hold "spacing" alike: none stands out


def test_a_row_whose_formula_the_question_quotes_is_named_and_its_words_name_no_column() -> None:
    functions = (
        "Usage | Description | Value\nUsage: round(x); Description: Round to integer away from zero; Value: Integer\n"
        "Usage: trunc(x); Description: Round to integer towards zero; Value: Integer\n"
        "Usage: pow(x,z); Description: Power function; Value: Real"
    )
    cell = best_cell("What does the round(x) function do?", [functions], [{}])
    assert cell is not None and cell.quoted and cell.best_row  # round(x) is quoted; "round" alone is in two rows
    assert functions[cell.start : cell.end] == "Round to integer away from zero"  # its "round" names the row, not the value
    kayaks = "Boat | Deposit\nBoat: kayak; Deposit: 80 euros\nBoat: canoe; Deposit: 120 euros"
    plain = best_cell("What is lent with every kayak?", [kayaks], [{}])
    assert plain is not None and not plain.quoted  # a cell of plain words is named by its words, never quoted


def test_of_two_tables_with_the_same_rows_the_one_whose_title_the_question_names_answers() -> None:
    plain = "Table 4: A Table With Vertical Lines\nDataset | Result\nDataset: Data1; Result: 0.12345\nDataset: Data2; Result: 0.67890"
    aligned = "Table 5: Numbers Aligned on the Decimal Point\nDataset | Result\nDataset: Data1; Result: 0.123 45\nDataset: Data2; Result: 10.6789"
    assert cell_text("What is Data2's result in the table aligned on the decimal point?", [plain, aligned]) == "10.6789"
    assert cell_text("What is Data2's result in the table with vertical lines?", [aligned, plain]) == "0.67890"
    prose_between = "Table 5: Numbers Aligned on the Decimal Point\nDataset | Result\nDataset: Data1; Result: 0.123 45\nThe next table has vertical lines.\nDataset: Data2; Result: 10.6789"
    assert all(row.title == "" for row in table_rows(prose_between)[1:])  # prose ends a table: its title goes with it


def test_a_sign_the_question_spells_out_names_its_row() -> None:
    characters = "Character | Frequency | Comments\nCharacter: $; Frequency: 4 in 5; Comments: Used in business\nCharacter: π; Frequency: 1 in 5; Comments: Unlikely to be used"
    assert cell_text("What comment is given for the dollar sign?", [characters]) == "Used in business"
    assert cell_text("How frequent is the pi character?", [characters]) == "1 in 5"


def test_a_quoted_command_names_its_row_even_without_a_word_and_only_when_whole() -> None:
    commands = (
        "Command | A Number | Comments\nCommand: \\author; A Number: 100; Comments: Author\n"
        "Command: \\table; A Number: 300; Comments: For tables\nCommand: \\table*; A Number: 400; Comments: For wider tables"
    )
    # "table" is a question word here, so no row holds a word of the question: the quote alone names it
    assert cell_text("What number is listed for the \\table* command?", [commands]) == "400"
    assert cell_text("What number is listed for the \\table command?", [commands]) == "300"  # "\table" is not "\table*"


def test_a_question_asking_what_something_stands_for_is_answered_by_a_phrase() -> None:
    symbols = (
        "Command | Output | Meaning\nCommand: \\farcm; Output: . 0; Meaning: fraction of an arcminute\n"
        "Command: \\farcs; Output: 00 .; Meaning: fraction of an arcsecond"
    )
    reader = [{(symbols.index("00 ."), symbols.index("00 .") + 4): -0.5}]  # the reader is sure of the symbol
    cell = best_cell("What does the \\farcs symbol command stand for?", [symbols], reader)
    assert cell is not None and symbols[cell.start : cell.end] == "fraction of an arcsecond"
    cell = best_cell("What output does the \\farcs command give?", [symbols], reader)
    assert cell is not None and symbols[cell.start : cell.end] == "00 ."  # the column named: no phrase wanted


def test_an_acronym_in_a_header_names_the_column_its_words_spell() -> None:
    """"PC2" is the second principal component and "NB" the negative binomial: the initials of
    question words in a row (and the number it says, as a digit or an ordinal)."""
    loadings = "PC1 | PC2 | PC3\nUrbanPop; PC1: 0.0463; PC2: 0.9769; PC3: -0.2005\nMurder; PC1: 0.5359; PC2: -0.4182; PC3: 0.3412"
    assert cell_text("What is the loading of UrbanPop on the second principal component?", [loadings]) == "0.9769"
    assert cell_text("What is the loading of UrbanPop on principal component 3?", [loadings]) == "-0.2005"
    models = "Object | GLM Poisson | GLM NB\nObject: log L; GLM Poisson: −17971.6; GLM NB: −12170.6\nObject: AIC; GLM Poisson: 35959.2; GLM NB: 24359.1"
    assert cell_text("What is the log L of the negative binomial GLM?", [models]) == "−12170.6"


def test_a_statistics_symbol_names_the_column_of_what_it_means() -> None:
    """σ is a standard deviation and µ a mean; of two headers holding σ, the one that is σ alone
    ("(T − µ)/σ" holds more than the question asks)."""
    stats = "Model | T | µ | σ | (T − µ)/σ\nadditive; T: 438; µ: 404.0265; σ: 10.1618; (T − µ)/σ: 3.3433\nrecessive; T: 101; µ: 83.5979; σ: 5.2912; (T − µ)/σ: 3.2889"
    assert cell_text("What is the standard deviation of the additive statistic?", [stats]) == "10.1618"
    assert cell_text("What is the mean of the recessive statistic?", [stats]) == "83.5979"


def test_a_column_the_question_names_outranks_a_title_holding_one_of_its_words() -> None:
    other = "Table 4: MAX test for melanoma data\nModel | p-value\nadditive; p-value: < 0.0001\nrecessive; p-value: 0.43"
    stats = "additive; µ: 404.0265; σ: 10.1618\nrecessive; µ: 83.5979; σ: 5.2912"  # a passage that starts inside its table
    assert cell_text("What is the standard deviation of the additive statistic for the diabetes data?", [other, stats]) == "10.1618"


def test_a_number_naming_the_column_names_no_row_and_a_footnote_mark_is_no_word_of_its_cell() -> None:
    """"step 2" names the column: the "2" in another row's cells does not name that row, and the
    footnote mark of "760.4 2" does not make the AIC cell part of what the question names."""
    steps = "Start | Step 1 | Step 2\ndim(θ); Start: 2; Step 1: 1; Step 2: 4\nAIC; Start: 1872.1; Step 1: 407.6; Step 2: 760.4 2\nBIC; Start: 1882.8; Step 1: 412.9; Step 2: 781.7 2"
    assert cell_text("What AIC was reported for step 2?", [steps]) == "760.4 2"


def test_a_column_named_with_its_number_picks_the_table_that_has_it() -> None:
    """Two tables with an AIC row: the one with a "Step 3" column answers "the AIC at step 3",
    though the other's section line holds more of the question's words."""
    first = "Correct calculations:\nAIC; Start: 3915.8; Step 1: 3916.7; Step 2: 3896.5\nBIC; Start: 3947.8; Step 1: 3943.4; Step 2: 3939.2"
    forward = "Start | Step 1 | Step 2 | Step 3\nAIC; Start: 3915.8; Step 1: 3916.7; Step 2: 3837.0; Step 3: 3800.0\nBIC; Start: 3947.8; Step 1: 3943.4; Step 2: 3890.4; Step 3: 3858.7"
    assert cell_text("With correctly calculated criteria, what is the AIC at step 3?", [first, forward]) == "3800.0"
