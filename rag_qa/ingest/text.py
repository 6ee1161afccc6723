"""Decoding bytes to text without silent mangling, and cleaning text for the models while keeping
a character map back to the text it came from, so offsets always point into the original."""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# A detected (not declared) encoding is only trusted when the detector sees little "chaos".
MAX_DETECTION_CHAOS = 0.1
# Short or ambiguous texts decode cleanly in several single-byte code pages (é is é in cp1252 and
# ě in cp1250); when the detector cannot tell them apart, the common Western ones win.
PREFERRED_CODE_PAGES = ("cp1252", "latin_1", "iso8859_15")
CHAOS_TIE = 0.01
MIN_WIDE_UNICODE_BYTES = 32
WIDE_UNICODE = ("utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be")


class DecodeError(ValueError):
    """The bytes are not text in any encoding we can name with confidence."""


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode file bytes: a BOM first, then strict UTF-8, then a declared charset, then detection.

    Valid UTF-8 beats a declaration because a wrong `<meta charset>` is common and UTF-8 almost
    never validates by accident. Raises DecodeError rather than guessing when the encoding cannot
    be told with confidence.
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DecodeError(f"starts with a {encoding} byte-order mark but is not valid {encoding}: {exc.reason}")
    if b"\x00" in data:  # UTF-16/32 without a BOM, or binary: only long enough text can tell
        binary = "binary content (NUL bytes) in a text file"
        if len(data) < MIN_WIDE_UNICODE_BYTES:
            raise DecodeError(binary)
        return _detect(data, allowed=WIDE_UNICODE, failure=binary)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared:
        try:
            return data.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong declaration is common; fall through to detection
    return _detect(data)


def _detect(data: bytes, allowed: tuple[str, ...] | None = None, failure: str | None = None) -> str:
    from charset_normalizer import from_bytes

    failure = failure or "not UTF-8 and the encoding could not be detected with confidence; convert it to UTF-8"
    matches = [m for m in from_bytes(data) if m.chaos <= MAX_DETECTION_CHAOS and (allowed is None or m.encoding in allowed)]
    if not matches:
        raise DecodeError(failure)
    least_chaos = min(m.chaos for m in matches)
    tied = [m for m in matches if m.chaos <= least_chaos + CHAOS_TIE]
    for preferred in PREFERRED_CODE_PAGES:
        for match in tied:
            if preferred == match.encoding or preferred in match.could_be_from_charset:
                return data.decode(preferred)
    return str(tied[0])


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff\ud800-\udfff]")
_SPACES = re.compile(r"[ \t\xa0\u2000-\u200a\u202f\u205f\u3000]+")
# Passes of (pattern, replacement), applied in order. Cleaning only ever deletes characters or
# replaces a matched run by a shorter string, which is what makes the character map simple.
_BASE_PASSES = (
    (re.compile(r"\r\n?"), "\n"),
    (_CONTROL, ""),
    (_SPACES, " "),
    (re.compile(r"[^\S\n]+(?=\n)|(?<=\n)[^\S\n]+"), ""),  # spaces at line edges
)
_LINE_END_HYPHEN = re.compile(r"(?<=\w)-\n(?=[a-z])")
# A lone line break is a soft wrap, unless the next line starts a list item, heading or quote.
_SOFT_WRAP = (re.compile(r"(?<!\n)\n(?!\n|(?:[-*+>#]|\d+[.)])\s)"), " ")
_HYPHENATED = re.compile(r"(?<![\w-])(\w+)-(\w+)(?![\w-])")
_WORD = re.compile(r"\w+")
_WORD_BEFORE = re.compile(r"\w+\Z")
_FINAL_PASSES = (
    (re.compile(r"\n{3,}"), "\n\n"),
    (re.compile(r"\A\s+|\s+\Z"), ""),
)


Replacement = str | Callable[[re.Match[str]], str]


def kept_hyphens(text: str) -> frozenset[str]:
    """Hyphenated words `text` writes within a line ("camera-ready") and never as one word: a
    hyphen at a line end inside one of them is the word's own and stays. A document's own usage
    is the only dictionary at hand; a word it never writes whole nor hyphenated on one line is
    joined ("infor- mation" is "information")."""
    whole = {word.casefold() for word in _WORD.findall(text)}
    return frozenset(f"{a}-{b}".casefold() for a, b in _HYPHENATED.findall(text) if (a + b).casefold() not in whole)


def _passes(join_lines: bool, hyphens: frozenset[str]) -> tuple[tuple[re.Pattern[str], Replacement], ...]:
    if not join_lines:
        return _BASE_PASSES + _FINAL_PASSES
    return _BASE_PASSES + ((_LINE_END_HYPHEN, _hyphen_rule(hyphens)), _SOFT_WRAP) + _FINAL_PASSES


def _hyphen_rule(hyphens: frozenset[str]) -> Replacement:
    """What a hyphen and line break at a line end become: nothing (the word joined), or the
    hyphen alone for a word in `hyphens`."""
    if not hyphens:
        return ""

    def rule(match: re.Match[str]) -> str:
        before = _WORD_BEFORE.search(match.string, max(0, match.start() - 64), match.start())
        after = _WORD.match(match.string, match.end())
        word = f"{before.group() if before else ''}-{after.group() if after else ''}".casefold()
        return "-" if word in hyphens else ""

    return rule


def clean_text(text: str, join_lines: bool = False, hyphens: frozenset[str] = frozenset()) -> str:
    """Normalise Unicode (NFC) and whitespace so passages embed and read well.

    `join_lines` re-flows hard-wrapped lines (PDF extraction, wrapped text) into paragraphs,
    undoing hyphenation at line ends, except within the words of `hyphens` (`kept_hyphens` of
    the whole document); blank lines stay paragraph breaks, list items stay lines.
    """
    text = unicodedata.normalize("NFC", text)
    for pattern, replacement in _passes(join_lines, hyphens):
        text = pattern.sub(replacement, text)
    return text


@dataclass(frozen=True)
class MappedText:
    """Cleaned text with, for each of its characters, the range of original characters it came
    from: `original[starts[i]:ends[i]]` became `text[i]`."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original range that cleaned characters [start, end) came from (end > start)."""
        return self.starts[start], self.ends[end - 1]


def clean_mapped(text: str, join_lines: bool = False, hyphens: frozenset[str] = frozenset()) -> MappedText:
    """`clean_text` for the models, with a map back to `text` so that answers can be quoted from it."""
    chars, starts, ends = _nfc_mapped(text)
    for pattern, replacement in _passes(join_lines, hyphens):
        chars, starts, ends = _sub_mapped(pattern, replacement, chars, starts, ends)
    return MappedText(chars, tuple(starts), tuple(ends))


def _nfc_mapped(text: str) -> tuple[str, list[int], list[int]]:
    """NFC, one run of a starter and its combining marks at a time, so each output character
    maps to the run it came from."""
    if unicodedata.is_normalized("NFC", text):
        return text, list(range(len(text))), list(range(1, len(text) + 1))
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    run_start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or not unicodedata.combining(text[i]):
            run = text[run_start:i]
            normal = unicodedata.normalize("NFC", run)
            if normal == run:
                starts.extend(range(run_start, i))
                ends.extend(range(run_start + 1, i + 1))
            else:
                starts.extend([run_start] * len(normal))
                ends.extend([i] * len(normal))
            out.append(normal)
            run_start = i
    return "".join(out), starts, ends


def _sub_mapped(pattern: re.Pattern[str], rule: Replacement, text: str, starts: list[int], ends: list[int]) -> tuple[str, list[int], list[int]]:
    """`pattern.sub(replacement, text)`, carrying the map: kept characters keep theirs, and a
    replacement's characters map to the whole original range of the match."""
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    last = 0
    for match in pattern.finditer(text):
        first, stop = match.span()
        out.append(text[last:first])
        new_starts += starts[last:first]
        new_ends += ends[last:first]
        replacement = rule if isinstance(rule, str) else rule(match)
        if replacement:
            out.append(replacement)
            new_starts += [starts[first]] * len(replacement)
            new_ends += [ends[stop - 1]] * len(replacement)
        last = stop
    if last == 0:
        return text, starts, ends
    out.append(text[last:])
    new_starts += starts[last:]
    new_ends += ends[last:]
    return "".join(out), new_starts, new_ends


def trim_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span [start, end) of `text` without whitespace at either edge; None if nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _line_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def strip_running_lines(pages: list[str], edge_lines: int = 2, min_share: float = 0.6) -> list[str]:
    """Remove running headers and footers: lines among the first or last `edge_lines` of a page
    that recur (page numbers ignored) on at least `min_share` of the pages (3 pages minimum)."""
    if len(pages) < 3:
        return pages
    page_lines = [page.split("\n") for page in pages]
    edges = [[i for i, line in enumerate(lines) if line.strip()] for lines in page_lines]
    edges = [filled[:edge_lines] + filled[-edge_lines:] for filled in edges]
    counts: dict[str, int] = {}
    for lines, at_edge in zip(page_lines, edges):
        for key in {_line_key(lines[i]) for i in at_edge}:
            counts[key] = counts.get(key, 0) + 1
    running = {key for key, n in counts.items() if n >= max(3, min_share * len(pages))}
    if not running:
        return pages
    cleaned = []
    for lines, at_edge in zip(page_lines, edges):
        dropped = {i for i in at_edge if _line_key(lines[i]) in running}
        cleaned.append("\n".join(line for i, line in enumerate(lines) if i not in dropped))  # blank lines kept: they part paragraphs
    return cleaned
