"""Decoding bytes to text without silent mangling, and cleaning text while keeping it one string
whose offsets everything downstream refers to."""

from __future__ import annotations

import codecs
import re
import unicodedata

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# A detected (not declared) encoding is only trusted when the detector sees little "chaos".
MAX_DETECTION_CHAOS = 0.1


class DecodeError(ValueError):
    """The bytes are not text in any encoding we can name with confidence."""


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode file bytes: BOM first, then a declared charset, then strict UTF-8, then detection.

    Raises DecodeError rather than guessing when the encoding cannot be told with confidence.
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DecodeError(f"starts with a {encoding} byte-order mark but is not valid {encoding}: {exc.reason}")
    if declared:
        try:
            return data.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong declaration is common; fall through to detection
    if b"\x00" in data:
        raise DecodeError("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return _detect(data)


def _detect(data: bytes) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.chaos > MAX_DETECTION_CHAOS:
        raise DecodeError("not UTF-8 and the encoding could not be detected with confidence; convert it to UTF-8")
    return str(best)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_SPACES = re.compile(r"[ \t\xa0\u2000-\u200a\u202f\u205f\u3000]+")
_HYPHEN_BREAK = re.compile(r"(\w)-\n([a-z])")
# A lone line break is a soft wrap, unless the next line starts a list item, heading or quote.
_SINGLE_NEWLINE = re.compile(r"(?<!\n)\n(?!\n|(?:[-*+>#]|\d+[.)])\s)")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def clean_text(text: str, join_lines: bool = False) -> str:
    """Normalise Unicode and whitespace so passages embed and read well.

    `join_lines` re-flows hard-wrapped lines (PDF extraction, wrapped text) into paragraphs,
    undoing hyphenation at line ends; blank lines stay paragraph breaks, list items stay lines.
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    if join_lines:
        text = _HYPHEN_BREAK.sub(r"\1\2", text)
        text = _SINGLE_NEWLINE.sub(" ", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def _line_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def strip_running_lines(pages: list[str], edge_lines: int = 2, min_share: float = 0.6) -> list[str]:
    """Remove running headers and footers: lines among the first or last `edge_lines` of a page
    that recur (page numbers ignored) on at least `min_share` of the pages (3 pages minimum)."""
    if len(pages) < 3:
        return pages
    page_lines = [[line for line in page.split("\n") if line.strip()] for page in pages]
    counts: dict[str, int] = {}
    for lines in page_lines:
        for key in {_line_key(line) for line in lines[:edge_lines] + lines[-edge_lines:]}:
            counts[key] = counts.get(key, 0) + 1
    running = {key for key, n in counts.items() if n >= max(3, min_share * len(pages))}
    if not running:
        return pages
    cleaned = []
    for lines in page_lines:
        last = len(lines) - edge_lines
        kept = [line for i, line in enumerate(lines) if not ((i < edge_lines or i >= last) and _line_key(line) in running)]
        cleaned.append("\n".join(kept))
    return cleaned
