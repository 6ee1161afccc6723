"""E-books (.epub) made with EbookLib's writer: chapters in spine order as pages, headings kept, the
navigation document and styles left out, offsets into the text `show` returns; DRM-encrypted,
renamed and broken books refused with a reason."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from helpers import load_file

from rag_qa import RagQA
from rag_qa.errors import LoadError


def book(path: Path) -> Path:
    """Two chapters, placed in the spine in the opposite order to their creation, a style sheet and a table of contents."""
    from ebooklib import epub

    volume = epub.EpubBook()
    volume.set_identifier("harborview-repair-guide")
    volume.set_title("The Harborview Repair Guide")
    volume.set_language("en")
    style = epub.EpubItem(uid="style", file_name="style/main.css", media_type="text/css", content=b"h1 { color: teal; }")
    volume.add_item(style)
    chapters = []
    for name, heading, body in [
        ("sharpening.xhtml", "Sharpening", "Sharpen a chisel on the medium stone first, then on the fine stone."),
        ("gluing.xhtml", "Gluing", "Wood glue needs clamps for at least one hour before the joint is handled."),
    ]:
        chapter = epub.EpubHtml(title=heading, file_name=name, lang="en")
        chapter.content = f"<html><head><title>The Harborview Repair Guide</title></head><body><h1>{heading}</h1><p>{body}</p></body></html>"
        chapter.add_item(style)
        volume.add_item(chapter)
        chapters.append(chapter)
    volume.toc = tuple(chapters)
    volume.add_item(epub.EpubNcx())
    volume.add_item(epub.EpubNav())
    volume.spine = ["nav", chapters[1], chapters[0]]  # gluing is read first
    epub.write_epub(str(path), volume)
    return path


def test_chapters_in_spine_order_are_pages_without_the_table_of_contents_or_styles(tmp_path):
    document = load_file(book(tmp_path / "repairs.epub"))
    assert document.text == (
        "Gluing\n\nWood glue needs clamps for at least one hour before the joint is handled.\n\n"
        "Sharpening\n\nSharpen a chisel on the medium stone first, then on the fine stone."
    )
    assert document.page_at(document.text.index("chisel")) == 2


def test_an_indexed_book_answers_with_its_chapter_and_exact_offsets(tmp_path):
    path = book(tmp_path / "repairs.epub")
    with RagQA.open(tmp_path / "index") as qa:
        assert qa.index([path]).files_indexed == 1
        hit = qa.search("how long to clamp glued wood", top_k=1, mode="bm25")[0].passage
        assert qa.show(hit.source).text[hit.char_start : hit.char_end] == hit.text and hit.page == 1


def test_encrypted_renamed_and_broken_books_are_refused_with_a_reason(tmp_path):
    good = book(tmp_path / "good.epub")
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(tmp_path / "drm.epub", "w") as drm, zipfile.ZipFile(tmp_path / "broken.epub", "w") as broken:
        for item in source.infolist():
            data = source.read(item)
            drm.writestr(item, data)
            broken.writestr(item, b"<container><unclosed" if item.filename == "META-INF/container.xml" else data)
        drm.writestr("META-INF/encryption.xml", "<encryption/>")
    (tmp_path / "renamed.epub").write_text("A text file with the wrong name.")
    for name, reason in [("drm.epub", "DRM"), ("broken.epub", "malformed"), ("renamed.epub", "not an EPUB e-book")]:
        with pytest.raises(LoadError, match=reason):
            load_file(tmp_path / name)
