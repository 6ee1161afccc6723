"""HTML pages shaped like the real world, through the loader (decode, parse, clean): what a
reader sees in a browser is what gets indexed, and nothing hidden is."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag_qa.config import IngestConfig
from rag_qa.errors import LoadError
from rag_qa.ingest.loaders import load_document
from rag_qa.ingest.pdf import GuardedPdfReader


@pytest.fixture(scope="module")
def pdf_reader():
    with GuardedPdfReader(timeout_s=30) as reader:
        yield reader


@pytest.fixture
def extract(tmp_path: Path, pdf_reader):
    def run(page: str | bytes, name: str = "page.html") -> str:
        path = tmp_path / name
        path.write_bytes(page.encode("utf-8") if isinstance(page, str) else page)
        return load_document(str(path), IngestConfig(), pdf_reader).text

    return run


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        pytest.param(
            "<html><head><title>T</title><body><p>Hello world. The secret code is MANGO-42.</p></body></html>",
            "T\n\nHello world. The secret code is MANGO-42.",
            id="missing-head-close",
        ),
        pytest.param("<html><head><title>T</title></head><body><p>Open ended", "T\n\nOpen ended", id="missing-body-and-html-close"),
        pytest.param("<p>One<p>Two<ul><li>three<li>four</ul>", "One\n\nTwo\n\nthree\n\nfour", id="implicit-closes"),
        pytest.param("<p>Fish &amp; chips &lt;3 caf&eacute; &#8364;5&nbsp;each &copy;</p>", "Fish & chips <3 café €5 each ©", id="entities"),
        pytest.param("<p>Shown<!-- not shown --> too</p><!--[if IE]><p>old browsers</p><![endif]-->", "Shown too", id="comments"),
        pytest.param("<p>Text<![CDATA[ raw data ]]> after</p>", "Text after", id="cdata-is-a-comment-in-html"),
        pytest.param("<p><b><i>bold italic</b> text</i> here</p>", "bold italic text here", id="misnested"),
        pytest.param(
            "<head><script>var secret = 1;</script><style>p { color: red }</style><meta name='description' content='meta secret'>"
            "</head><body><template><p>template secret</p></template><noscript>enable JavaScript</noscript>"
            "<script type='application/ld+json'>{\"secret\": true}</script><p>Visible.</p><svg><text>svg secret</text></svg></body>",
            "Visible.",
            id="hidden-parts",
        ),
        pytest.param(
            "<table><caption>Fees</caption><tr><th>Tool<th>Fee<tr><td>Drill<td>2 €<tr><td>Saw<td>3 €</table>",
            "Fees\n\nTool | Fee\nDrill | 2 €\nSaw | 3 €",
            id="table-rows-stay-rows",
        ),
        pytest.param("<pre>line 1\n    indented line 2</pre><p>after   the\n   pre</p>", "line 1\nindented line 2\n\nafter the pre", id="pre-keeps-lines"),
        pytest.param("<p>un<b>believ</b>able<br>next line</p>", "unbelievable\nnext line", id="inline-and-br"),
        pytest.param("<P CLASS=x>Upper <B>case</B> tags</P>", "Upper case tags", id="upper-case"),
        pytest.param("Hello <b>world</b>, no html or body tags", "Hello world, no html or body tags", id="fragment"),
        pytest.param("<title>Guide</title><h1>Tools</h1><div><div><p>Deep</p></div></div>", "Guide\n\nTools\n\nDeep", id="title-kept-once"),
        pytest.param("<p>" + "<div>" * 5000 + "deep" + "</div>" * 5000 + "</p>", "deep", id="nesting-5000-deep"),
        pytest.param("<p>Arabic: مرحبا بالعالم</p><p>Chinese: 你好，世界</p><p>Emoji: 🔧🎉</p>", "Arabic: مرحبا بالعالم\n\nChinese: 你好，世界\n\nEmoji: 🔧🎉", id="scripts-and-emoji"),
    ],
)
def test_real_world_shaped_pages(extract, page: str, expected: str) -> None:
    assert extract(page) == expected


def test_meta_charset_that_disagrees_with_the_bytes(extract) -> None:
    utf8_but_declared_latin1 = "<meta charset='iso-8859-1'><p>Crème brûlée at the café</p>".encode("utf-8")
    assert extract(utf8_but_declared_latin1) == "Crème brûlée at the café"
    cp1252_but_declared_utf8 = "<meta charset='utf-8'><p>Crème brûlée at the café, “quoted” for 5 €</p>".encode("cp1252")
    assert extract(cp1252_but_declared_utf8, "b.html") == "Crème brûlée at the café, “quoted” for 5 €"


def test_a_page_without_text_is_reported(extract) -> None:
    with pytest.raises(LoadError, match="no text content"):
        extract("<html><head><title></title><script>document.write('x')</script></head><body><img src='a.png'></body></html>")


@pytest.mark.integration
def test_one_20_mb_line(extract) -> None:
    started = time.perf_counter()
    text = extract("<html><body><p>" + "word " * 4_000_000 + "</p></body></html>")
    assert len(text) == 4_000_000 * 5 - 1 and text.startswith("word word")
    print(f"\n20 MB one-line page extracted in {time.perf_counter() - started:.1f} s")
