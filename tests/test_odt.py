"""OpenDocument text (.odt) written with odfpy (a real ODF writer): headings, paragraphs,
lists and tables in order; hostile variants (zip bomb, encrypted, macros, broken
XML, renamed) refused one by one with a reason."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from helpers import READER, load_file, needs_shared

from rag_qa import RagQA
from rag_qa.config import ReaderConfig
from rag_qa.errors import LoadError


def odt(path: Path) -> Path:
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, List, ListItem, P

    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text="Workshop rules"))
    document.text.addElement(P(text="Goggles are lent free of charge."))
    items = List()
    for rule in ("Sweep the bench after use.", "Report broken tools at the desk."):
        item = ListItem()
        item.addElement(P(text=rule))
        items.addElement(item)
    document.text.addElement(items)
    table = Table(name="Deposits")
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for row_cells in (("Tool", "Deposit"), ("Band saw", "50 euros")):
        row = TableRow()
        for value in row_cells:
            cell = TableCell()
            cell.addElement(P(text=value))
            row.addElement(cell)
        table.addElement(row)
    document.text.addElement(table)
    document.text.addElement(P(text="Questions go to the volunteer on duty."))
    document.save(str(path))
    return path


def test_an_odt_is_read_in_order_with_its_spacing_lists_and_tables(tmp_path):
    text = load_file(odt(tmp_path / "rules.odt")).text
    assert text == (
        "Workshop rules\n\nGoggles are lent free of charge.\n\nSweep the bench after use.\n\nReport broken tools at the desk.\n\n"
        "Tool | Deposit\nTool: Band saw; Deposit: 50 euros\n\nQuestions go to the volunteer on duty."
    )


def encrypted_part(name: str, data: bytes) -> bytes:
    """A part of the file as LibreOffice saves it with a password: content.xml enciphered, and
    its manifest entry holding the encryption data."""
    if name == "content.xml":
        return os.urandom(len(data))
    entry = b'manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
    return data.replace(entry, entry[:-2] + b'><manifest:encryption-data manifest:checksum-type="SHA1/1K"/></manifest:file-entry>')


def hostile_odts(folder: Path, good: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "renamed.odt").write_text("A plain text file with the wrong name.")
    (folder / "truncated.odt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with zipfile.ZipFile(good) as source:
        parts = [(item, source.read(item)) for item in source.infolist()]
    variants = {
        "broken-xml.odt": lambda name, data: b"<unclosed" if name == "content.xml" else data,
        "encrypted.odt": lambda name, data: encrypted_part(name, data),
    }  # fmt: skip
    for file_name, change in variants.items():
        with zipfile.ZipFile(folder / file_name, "w") as changed:
            for item, data in parts:
                changed.writestr(item, change(item.filename, data))
    with zipfile.ZipFile(folder / "macros.odt", "w") as macros:
        for item, data in parts:
            macros.writestr(item, data)
        macros.writestr("Basic/Standard/Module1.xml", "<script:module>Sub Main: Shell(\"rm -rf ~\"): End Sub</script:module>")
    with zipfile.ZipFile(folder / "bomb.odt", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        bomb.writestr("content.xml", b"<" + b"a" * 300_000_000)
    return {"renamed.odt": "not an OpenDocument text", "truncated.odt": "truncated", "broken-xml.odt": "malformed", "encrypted.odt": "encrypted",
            "macros.odt": "macros", "bomb.odt": "zip bomb"}  # fmt: skip


def test_hostile_odts_are_refused_with_their_reasons(tmp_path):
    good = odt(tmp_path / "rules.odt")
    for name, word in hostile_odts(tmp_path / "bad", good).items():
        with pytest.raises(LoadError, match=word):
            load_file(tmp_path / "bad" / name)


@pytest.mark.integration
def test_an_odt_answers_with_exact_offsets(tmp_path):
    needs_shared(READER)
    odt(tmp_path / "rules.odt")
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=str(READER))) as qa:
        assert qa.index([tmp_path / "rules.odt"]).files_indexed == 1
        best = qa.ask("What is the deposit for the band saw?").answers[0]
        assert "50 euros" in best.text and best.page is None
        assert qa.show(best.source).text[best.start : best.end] == best.text
