"""Slide decks (.pptx), workbooks (.xlsx) and CSV files, made with the real writers (python-pptx,
openpyxl, csv): text in reading order, slides and sheets as pages, cells named by their column,
formulas as their saved values, offsets into the text `show` returns, hostile files refused one by
one with a reason while the rest is indexed."""

from __future__ import annotations

import csv
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from helpers import READER, load_file, needs_shared

from rag_qa import RagQA
from rag_qa.config import IngestConfig, ReaderConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.loaders import discover, load_document
from rag_qa.ingest.pdf import GuardedPdfReader


def deck(path: Path) -> Path:
    """Three slides: a title slide; a table with speaker notes; two text boxes placed out of order."""
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    first.shapes.title.text = "Harborview Tool Library"
    first.placeholders[1].text = "Open on Saturdays from nine to one."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Deposits"
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(1.5)).table
    for r, row in enumerate([("Tool", "Deposit"), ("Drill", "30 euros"), ("Kayak", "80 euros")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    second.notes_slide.notes_text_frame.text = "Every kayak is lent with a life jacket at no charge."
    third = presentation.slides.add_slide(presentation.slide_layouts[6])  # blank: no title
    lower = third.shapes.add_textbox(Inches(1), Inches(4), Inches(6), Inches(1))
    lower.text_frame.text = "Repairs happen at the café on Fridays."
    upper = third.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1))
    upper.text_frame.text = "Volunteers"
    presentation.save(str(path))
    return path


def workbook(path: Path) -> Path:
    """Two sheets; the deposit of the ladder is a formula whose saved value is 60."""
    import openpyxl

    book = openpyxl.Workbook()
    prices = book.active
    prices.title = "Prices"
    prices.append(["Tool", "Deposit", "Fee per day"])
    prices.append(["Drill", 30, 2.5])
    prices.append([])
    prices.append(["Ladder", "=B2*2", None])
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Day"])
    staff.append(["Ingrid", "Tuesday"])
    book.save(str(path))
    return with_saved_formula_value(path, "xl/worksheets/sheet1.xml", "B4", "60")


def with_saved_formula_value(path: Path, part: str, cell: str, value: str) -> Path:
    """Add the value a spreadsheet program saves beside a formula (openpyxl writes formulas only)."""
    with zipfile.ZipFile(path) as source:
        items = [(item, source.read(item)) for item in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item, data in items:
            if item.filename == part:
                data = re.sub(rf'(<c r="{cell}"[^>]*>\s*<f>[^<]*</f>)(<v\s*/>|<v></v>)?'.encode(), rb"\1<v>" + value.encode() + b"</v>", data)
            target.writestr(item, data)
    return path


def prices_csv(path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerows([["Tool", "Deposit"], ["Sander", "25"], ["Tent", "40"]])
    return path


def test_a_slide_is_a_page_read_title_first_then_top_to_bottom_with_tables_and_notes(tmp_path):
    document = load_file(deck(tmp_path / "library.pptx"))
    slides = [document.text[start:end].strip() for start, end in zip(document.page_starts, [*document.page_starts[1:], len(document.text)])]
    assert slides == [
        "Harborview Tool Library\n\nOpen on Saturdays from nine to one.",
        "Deposits\n\nTool | Deposit\nTool: Drill; Deposit: 30 euros\nTool: Kayak; Deposit: 80 euros\n\nNotes: Every kayak is lent with a life jacket at no charge.",
        "Volunteers\n\nRepairs happen at the café on Fridays.",
    ]
    assert document.page_at(document.text.index("life jacket")) == 2


def test_a_sheet_is_a_page_with_cells_named_by_their_column_and_formulas_as_saved_values(tmp_path):
    document = load_file(workbook(tmp_path / "prices.xlsx"))
    assert document.text == (
        "Sheet: Prices\nTool | Deposit | Fee per day\nTool: Drill; Deposit: 30; Fee per day: 2.5\nTool: Ladder; Deposit: 60\n\n"
        "Sheet: Staff\nName | Day\nName: Ingrid; Day: Tuesday"
    )
    assert document.page_at(document.text.index("Ingrid")) == 2


def test_a_csv_file_is_one_sheet_with_its_delimiter_guessed(tmp_path):
    document = load_file(prices_csv(tmp_path / "more-prices.csv"))
    assert document.text == "Sheet: more-prices.csv\nTool | Deposit\nTool: Sander; Deposit: 25\nTool: Tent; Deposit: 40"
    assert document.page_starts == ()


def test_a_deck_with_a_200_mb_picture_is_refused_by_size_or_read_without_the_picture(tmp_path):
    import io

    from PIL import Image
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    slide.shapes.title.text = "Workshop photo"
    picture = io.BytesIO()
    Image.new("RGB", (8, 8)).save(picture, "PNG")
    slide.shapes.add_picture(picture, Inches(1), Inches(2))
    presentation.save(str(tmp_path / "small.pptx"))
    with zipfile.ZipFile(tmp_path / "small.pptx") as small, zipfile.ZipFile(tmp_path / "photo.pptx", "w") as huge:
        for item in small.infolist():  # the picture becomes 200 MB that do not compress (stored as they are)
            data = small.read(item)
            huge.writestr(item, data[:16] + os.urandom(200 << 20) if item.filename.startswith("ppt/media/") else data)
    with pytest.raises(LoadError, match="too large"):
        load_file(tmp_path / "photo.pptx")  # the default limit: 100 MB
    with GuardedPdfReader(timeout_s=60) as guard:
        assert load_document(str(tmp_path / "photo.pptx"), IngestConfig(max_file_mb=500), guard).text == "Workshop photo"


def test_a_million_empty_rows_cost_nothing(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Tool", "Deposit"])
    book.active.append(["Drill", 30])
    book.active["A1048576"] = "last row"  # the sheet claims a million rows, all but three empty
    book.save(tmp_path / "sparse.xlsx")
    assert load_file(tmp_path / "sparse.xlsx").text == "Sheet: Sheet\nTool | Deposit\nTool: Drill; Deposit: 30\nTool: last row"


def test_the_folder_walk_and_the_upload_list_know_the_new_formats(tmp_path):
    new = ["a.pptx", "b.xlsx", "c.csv", "e.eml", "f.odt", "g.msg"]
    for name in [*new, "d.ppt"]:
        (tmp_path / name).write_bytes(b"x")
    found, problems = discover([str(tmp_path)], IngestConfig())
    assert sorted(Path(f).name for f in found) == new
    assert [Path(p.path).name for p in problems] == ["d.ppt"] and ".pptx" in problems[0].reason
    from rag_qa.server.routes import _web_page
    from rag_qa.server.uploads import UploadRejected, check_suffix

    assert 'accept=".csv,.docx,.eml,.epub,.htm,.html,.markdown,.md,.msg,.odt,.pdf,.pptx,.txt,.xlsx"' in _web_page()  # the web page's file picker
    for name in new:
        check_suffix(name)  # uploads take them
    with pytest.raises(UploadRejected, match=r"\.pptx"):
        check_suffix("d.ppt")


def hostile_office_files(folder: Path, good: Path) -> dict[str, str]:
    """Broken or hostile variants of the .pptx or .xlsx file `good`, with a word each reason must contain."""
    from msoffcrypto.format.ooxml import OOXMLFile

    suffix, main = good.suffix, {".pptx": "ppt/presentation.xml", ".xlsx": "xl/workbook.xml"}[good.suffix]
    folder.mkdir(parents=True, exist_ok=True)
    with open(good, "rb") as plain, open(folder / f"encrypted{suffix}", "wb") as locked:
        OOXMLFile(plain).encrypt("secret", locked)
    (folder / f"renamed{suffix}").write_text("A plain text file with the wrong name.")
    (folder / f"truncated{suffix}").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / f"legacy{suffix}").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4096)
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(folder / f"broken-xml{suffix}", "w") as broken, zipfile.ZipFile(folder / f"macros{suffix}", "w") as macros:
        for item in source.infolist():
            data = source.read(item)
            broken.writestr(item, b"<unclosed" if item.filename == main else data)
            macros.writestr(item, data.replace(b".main+xml", b".macroEnabled.main+xml", 1) if item.filename == "[Content_Types].xml" else data)
    with zipfile.ZipFile(folder / f"bomb{suffix}", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("[Content_Types].xml", "<Types/>")
        bomb.writestr(main, b"<" + b"a" * 300_000_000)  # 300 MB in about 300 kB
    return {f"encrypted{suffix}": "encrypted", f"renamed{suffix}": "not a", f"truncated{suffix}": "truncated", f"legacy{suffix}": "97-2003",
            f"broken-xml{suffix}": "malformed", f"macros{suffix}": "macro-enabled", f"bomb{suffix}": "zip bomb"}  # fmt: skip


@pytest.mark.integration
def test_hostile_decks_and_workbooks_are_refused_one_by_one_and_the_rest_answers_with_exact_offsets(tmp_path):
    needs_shared(READER)
    folder = tmp_path / "docs"
    expected = {}
    for good in (deck(tmp_path / "library.pptx"), workbook(tmp_path / "prices.xlsx")):
        expected |= hostile_office_files(folder, good)
        shutil.copy(good, folder / good.name)
    prices_csv(folder / "more-prices.csv")
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=str(READER))) as qa:
        report = qa.index([folder])
        skipped = {Path(s["path"]).name: s["reason"] for s in report.files_skipped}
        assert set(skipped) == set(expected), skipped
        for name, word in expected.items():
            assert word in skipped[name], (name, skipped[name])
        assert report.files_indexed == 3 and qa.store.check() == []
        for question, source, answer, page in [
            ("What is lent with every kayak?", "library.pptx", "life jacket", 2),
            ("How much is the deposit for the drill?", "prices.xlsx", "30", 1),
            ("On which day does Ingrid work?", "prices.xlsx", "Tuesday", 2),
        ]:
            result = qa.ask(question, sources=[str(folder / source)])
            best = result.answers[0] if result.answers else result.best_guess
            assert best is not None and Path(best.source).name == source, (question, best)
            assert qa.show(best.source).text[best.start : best.end] == best.text
            assert answer in best.text and best.page == page, (question, best.text, best.page)


def test_one_bad_file_is_refused_with_its_name_and_reason(tmp_path):
    (tmp_path / "empty-looking.xlsx").write_text("Tool,Deposit")
    with pytest.raises(LoadError, match="not an Excel workbook"):
        load_file(tmp_path / "empty-looking.xlsx")
