"""Decoding and cleaning: every encoding we claim, and clear refusals instead of mojibake."""

import codecs

import pytest

from rag_qa.ingest.html import html_to_text
from rag_qa.ingest.text import DecodeError, clean_text, decode_text, kept_hyphens, strip_running_lines

SAMPLE = "Crème brûlée — naïve café, 10 € ✓"


@pytest.mark.parametrize(
    "data",
    [
        SAMPLE.encode("utf-8"),
        codecs.BOM_UTF8 + SAMPLE.encode("utf-8"),
        codecs.BOM_UTF16_LE + SAMPLE.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + SAMPLE.encode("utf-16-be"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom"],
)
def test_declared_and_default_encodings_decode_exactly(data):
    assert decode_text(data) == SAMPLE


def test_legacy_single_byte_text_is_detected_not_mangled():
    text = "Le café de la gare ouvre à sept heures. Les élèves déjeunent à midi et demi. " * 5
    assert decode_text(text.encode("cp1252")) == text


def test_binary_and_broken_text_are_refused():
    with pytest.raises(DecodeError, match="binary"):
        decode_text(b"\x00\x01\x02binary\x00")
    with pytest.raises(DecodeError, match="utf-16"):
        decode_text(codecs.BOM_UTF16_LE + b"\x00\xd8")  # lone surrogate


def test_clean_text_normalises_whitespace_and_reflows_pdf_lines():
    raw = "A  hard-\nwrapped\tline\r\ncontinues here.\n\n\n\nNew paragraph.\x0c"
    assert clean_text(raw) == "A hard-\nwrapped line\ncontinues here.\n\nNew paragraph."
    assert clean_text(raw, join_lines=True) == "A hardwrapped line continues here.\n\nNew paragraph."
    assert clean_text("Items:\n- one\n- two\n1. three", join_lines=True) == "Items:\n- one\n- two\n1. three"


def test_a_line_end_hyphen_stays_in_a_word_the_document_writes_hyphenated():
    """"camera-\nready" is camera-ready where the document writes "camera-ready" on one line and
    never "cameraready"; "infor-\nmation" is information (acmart's paper had "cameraready")."""
    document = "Send the camera-ready copy by May. The final camera-\nready version holds more infor-\nmation than the first."
    hyphens = kept_hyphens(document)
    assert hyphens == frozenset({"camera-ready"})
    assert clean_text(document, join_lines=True, hyphens=hyphens).endswith("The final camera-ready version holds more information than the first.")
    written_whole = "The co-\noperation of cooperation and co-operation."  # written whole too: joined as before
    assert "The cooperation of" in clean_text(written_whole, join_lines=True, hyphens=kept_hyphens(written_whole))


def test_running_headers_and_page_numbers_are_removed():
    fruit = ["apples", "pears", "plums", "figs", "limes"]
    pages = [f"Company Handbook\nAll about {f}.\nWhy {f} matter.\nPage {i}" for i, f in enumerate(fruit, 1)]
    cleaned = strip_running_lines(pages)
    assert all("Company Handbook" not in p and "Page" not in p for p in cleaned)
    assert cleaned[2] == "All about plums.\nWhy plums matter."
    assert strip_running_lines(pages[:2]) == pages[:2]  # too few pages to tell


def test_html_visible_text_only():
    html = """<html><head><title>Guide</title><style>p{color:red}</style>
    <script>var secret = "hidden";</script></head><body><h1>Heading</h1>
    <p>First &amp; second.</p><noscript>enable js</noscript><div>Third</div></body></html>"""
    text = clean_text(html_to_text(html), join_lines=True)
    assert text == "Guide\n\nHeading\n\nFirst & second.\n\nThird"


FRENCH = "Le café de la rue Müller sert une crème brûlée naïve, dit Noël Ørsted."
CZECH = "Příliš žluťoučký kůň úpěl ďábelské ódy. Čeština je krásný jazyk, říká pan Dvořák v Plzni. " * 3
JAPANESE = "日本語のテキストです。東京は日本の首都です。図書館は毎週土曜日に開きます。" * 2


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        pytest.param(FRENCH, "latin-1", id="latin-1-short"),
        pytest.param(FRENCH * 3, "latin-1", id="latin-1-issue-example"),
        pytest.param((FRENCH + " ") * 40, "latin-1", id="latin-1-long"),
        pytest.param("“Quoted” price: 5 € — naïve café.", "cp1252", id="cp1252-curly-quotes-euro"),
        pytest.param(CZECH, "cp1250", id="cp1250"),
        pytest.param(JAPANESE, "shift_jis", id="shift-jis"),
        pytest.param(FRENCH * 3, "utf-16-le", id="utf-16-le-no-bom"),
        pytest.param(FRENCH * 3, "utf-16", id="utf-16-bom"),
    ],
)
def test_legacy_encodings_decode_to_the_documents_own_words(text: str, encoding: str):
    """No mojibake: Latin-1 French must not come back as cp1250 (crčme brűlée naďve … Řrsted)."""
    assert decode_text(text.encode(encoding)) == text
