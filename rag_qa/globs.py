"""Path globs matched without backtracking, so no filter can freeze a search (issue 34: a regular
expression for `/**?**?…Z` took seconds per name and grew ~9x with each `**?`).

A glob is read into pieces (a character, `?`, a class, `*`, `**`, `**/`) and matched as the set
of positions in the glob a match may have reached (an integer, a bit per position), advanced one
character of the name at a time with a few bit operations: the work grows with the name's length
times the glob's, never more, whatever the glob (the length and the wildcards of a glob are
capped as well). Steps are remembered per character and per folder name, so names that share
folders cost little; a glob whose steps over the indexed names are too many to remember (names
that share nothing, against many wildcards) is refused past MAX_COMPUTED_STEPS, so one filter's
work stays bounded however large the index. Wildcards: `*` and `?` stay within a folder, `**` crosses folders, `**/`
spans any number of folders (none included), `[abc]` and `[!abc]` take one character of those
listed or not (never the folder separator; no ranges)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import takewhile

from rag_qa.errors import ConfigError

GLOB_CHARACTERS = frozenset("*?[")
MAX_GLOB_CHARS = 1000  # as an absolute path; a path is rarely a tenth of this
MAX_GLOB_WILDCARDS = 64  # `*`, `**`, `**/`, `?` and `[...]` together (the worst filter has 40)
MAX_REMEMBERED_STEPS = 100_000  # per glob and kind of step: bounded memory, whatever the names
MAX_COMPUTED_STEPS = 400_000  # steps worked out (not remembered) per glob: about half a second, however many names

ONE, REPEAT, FOLDERS = "one", "repeat", "folders"  # how a piece takes characters


class GlobTooComplexError(ConfigError):
    """A filter's glob is longer, or has more wildcards, than a filter may (CLI exit 2, HTTP 400)."""


@dataclass(frozen=True)
class Piece:
    """One piece of a glob. ONE takes one character it accepts; REPEAT (`*`, `**`) any number of
    them, none included; FOLDERS (`**/`) none, or any characters that end with the separator."""

    kind: str
    chars: frozenset[str] = frozenset()  # the characters accepted, or (negated) refused
    negated: bool = False

    def accepts(self, char: str) -> bool:
        return (char in self.chars) != self.negated

    @property
    def is_literal(self) -> bool:
        return self.kind == ONE and not self.negated and len(self.chars) == 1


WITHIN_FOLDER = frozenset(os.sep)  # refused by `*`, `?` and every class
ANY_IN_FOLDER = Piece(ONE, WITHIN_FOLDER, negated=True)
STAR = Piece(REPEAT, WITHIN_FOLDER, negated=True)
DOUBLE_STAR = Piece(REPEAT, negated=True)
FOLDERS_PIECE = Piece(FOLDERS)


def character_class(listed: str, negated: bool) -> Piece:
    """`[abc]` or `[!abc]`: one character within a folder, of those listed or not."""
    chars = frozenset(listed)
    return Piece(ONE, chars | WITHIN_FOLDER, negated=True) if negated else Piece(ONE, chars - WITHIN_FOLDER)


def parse(pattern: str) -> list[Piece]:
    """The pieces of a glob, read left to right: `**/` before `**` before `*`; `[` opens a class
    only when a `]` closes it (the first character inside, or after `!`, may be a `]`)."""
    pieces, i = [], 0
    while i < len(pattern):
        negated = pattern.startswith("[!", i)
        if pattern.startswith("**/", i):
            pieces.append(FOLDERS_PIECE)
            i += 3
        elif pattern.startswith("**", i):
            pieces.append(DOUBLE_STAR)
            i += 2
        elif pattern[i] in "*?":
            pieces.append(STAR if pattern[i] == "*" else ANY_IN_FOLDER)
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2 + negated)) != -1:
            pieces.append(character_class(pattern[i + 1 + negated : end], negated))
            i = end + 1
        else:
            pieces.append(Piece(ONE, frozenset(pattern[i])))
            i += 1
    return pieces


class Glob:
    """A compiled glob: `Glob(pattern).matches(name)` says whether the whole name matches.
    GlobTooComplexError when the glob is over the limits."""

    def __init__(self, pattern: str):
        self.pieces = checked_pieces(pattern)
        # quick first tests: the literal text before the first and after the last wildcard, the length
        self.prefix = literal_start(self.pieces)
        self.suffix = literal_start(self.pieces[::-1])[::-1] if len(self.prefix) < len(self.pieces) else ""
        self.shortest = sum(piece.kind == ONE for piece in self.pieces)
        self.single_characters, self.repeats, self.folders = (
            sum(1 << k for k, piece in enumerate(self.pieces) if piece.kind == kind) for kind in (ONE, REPEAT, FOLDERS)
        )
        self.skippable = self.repeats | self.folders
        self.start = self._skips(1 << len(self.prefix))
        self.accepted = 1 << len(self.pieces)
        self._accepts: dict[str, int] = {}  # character: the pieces that take it
        self._steps: dict[tuple[int, str], int] = {}  # (positions, character): positions after it
        self._folders: dict[tuple[int, str], int] = {}  # (positions, folder name): positions after it and a separator
        self._computed = 0  # steps worked out so far (the work budget: MAX_COMPUTED_STEPS)

    def matches(self, name: str) -> bool:
        """Folder by folder (what a folder's name does is remembered, so names that share folders
        cost little), then character by character along the file's own name."""
        if len(name) < self.shortest or not (name.startswith(self.prefix) and name.endswith(self.suffix)):
            return False
        *folders, last = name[len(self.prefix) :].split(os.sep)
        positions = self.start
        for folder in folders:
            key = (positions, folder)
            if (after := self._folders.get(key)) is None:
                after = remember(self._folders, key, self._step(self._along(positions, folder), os.sep))
            if not (positions := after):
                return False
        return bool(self._along(positions, last) & self.accepted)

    def _along(self, positions: int, text: str) -> int:
        """The positions after `text`, a name within one folder (no separator)."""
        steps = self._steps  # `_step`, inlined: this loop is where matching spends its time
        for char in text:
            if (after := steps.get((positions, char))) is None:
                after = remember(steps, (positions, char), self._advance(positions, char))
            if after == positions and not positions & self.single_characters:
                break  # only wildcards taking any character but the separator are left: nothing further moves them
            if not (positions := after):
                break
        return positions

    def _step(self, positions: int, char: str) -> int:
        """The positions after one more character (a bit per position: bit k, before piece k)."""
        key = (positions, char)
        if (after := self._steps.get(key)) is None:
            after = remember(self._steps, key, self._advance(positions, char))
        return after

    def _advance(self, positions: int, char: str) -> int:
        """All pieces at once, as bit operations: single characters move on, wildcards stay (and
        may be skipped), `**/` stays and ends with a separator."""
        self._computed += 1
        if self._computed > MAX_COMPUTED_STEPS:  # names that share nothing, against a glob of many wildcards
            raise GlobTooComplexError(
                f"matching this glob against the indexed names takes more than {MAX_COMPUTED_STEPS:,} steps: "
                "use fewer wildcards, or name a folder or a file type (such as 'handbooks/**/*.pdf')"
            )
        accepting = self._accepting(char)
        inside_folders = positions & self.folders
        moved = (positions & self.single_characters & accepting) << 1
        stayed = positions & self.repeats & accepting
        ended = inside_folders << 1 if char == os.sep else 0
        return self._skips(moved | stayed | ended) | inside_folders  # inside `**/` it may not end but with a separator

    def _accepting(self, char: str) -> int:
        """The pieces that take `char` (a bit each)."""
        if (mask := self._accepts.get(char)) is None:
            mask = sum(1 << k for k, piece in enumerate(self.pieces) if piece.kind != FOLDERS and piece.accepts(char))
            if len(self._accepts) < MAX_REMEMBERED_STEPS:
                self._accepts[char] = mask
        return mask

    def _skips(self, positions: int) -> int:
        """`positions` and every position that wildcards which may take nothing (`*`, `**`, `**/`)
        let the match skip to."""
        while (more := positions | (positions & self.skippable) << 1) != positions:
            positions = more
        return positions


def literal_start(pieces: list[Piece]) -> str:
    """The text the pieces begin with before any wildcard."""
    return "".join(next(iter(piece.chars)) for piece in takewhile(lambda piece: piece.is_literal, pieces))


def remember(steps: dict[tuple[int, str], int], key: tuple[int, str], after: int) -> int:
    """Keep a step for next time (forgetting all once there are too many: memory stays bounded)."""
    if len(steps) >= MAX_REMEMBERED_STEPS:
        steps.clear()
    steps[key] = after
    return after


def checked_pieces(pattern: str) -> list[Piece]:
    """The pieces of a glob within the limits, or GlobTooComplexError naming the limit (a filter
    this long is a mistake or an attack)."""
    if len(pattern) > MAX_GLOB_CHARS:
        raise GlobTooComplexError(f"a glob may have at most {MAX_GLOB_CHARS} characters (as an absolute path), this one has {len(pattern)}: use a shorter one")
    pieces = parse(pattern)
    wildcards = sum(not piece.is_literal for piece in pieces)
    if wildcards > MAX_GLOB_WILDCARDS:
        raise GlobTooComplexError(f"a glob may have at most {MAX_GLOB_WILDCARDS} wildcards (`*`, `**`, `?`, `[...]`), {pattern[:40]!r}... has {wildcards}")
    return pieces
