"""How users name documents. A file is stored under one name, its absolute resolved path (unique,
and the same whatever folder a command runs in). Everywhere a user names documents (`--source`,
`sources=`, the service's filters, Haystack) any of these forms works:

- the stored name, or any path to the file: relative to the current folder, `./`-relative, `~`;
- a folder: every indexed file under it;
- a glob over paths: `*` and `?` within one folder, `**` across folders (`'handbooks/**/*.pdf'`),
  matched without backtracking and within limits (`globs`: a glob cannot freeze a search).

A name that matches no indexed document is an error that says so (`UnknownSourceError`), never a
silent empty result; output shows a file under the current folder by its relative path."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from rag_qa.errors import RagQAError
from rag_qa.globs import GLOB_CHARACTERS, Glob

MAX_NAME_CHARS = 200  # of a file name that comes from outside (an upload, a mail's attachment)


class UnknownSourceError(RagQAError):
    """A document filter names nothing that is indexed (CLI exit 2, HTTP 404)."""


def plain_file_name(name: str | None) -> str | None:
    """The base name of a file name from outside (a client's upload, a mail's attachment) with
    anything risky replaced: no folders (of either slash), no leading dots, no control characters,
    nothing but letters, digits and `.-_ ()`, at most MAX_NAME_CHARS characters with the suffix
    kept; None when nothing usable is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join("_" if unicodedata.category(c).startswith("C") else c for c in name)
    name = re.sub(r"[^\w.\- ()]", "_", name).strip(" .")
    if not name or set(name) <= {"_", "."}:
        return None
    stem, suffix = os.path.splitext(name)
    return stem[: MAX_NAME_CHARS - len(suffix)] + suffix


def resolve_sources(patterns: Iterable[str], stored: Sequence[str], base: str | os.PathLike[str] | None = None) -> list[str]:
    """The stored names (of `stored`, in its order) that `patterns` name; relative paths and globs
    are taken from `base` (default: the current folder). UnknownSourceError names each pattern
    that matches nothing."""
    known, chosen, unknown = set(stored), set(), []
    for pattern in patterns:
        found = _matches(pattern, stored, known, Path(base) if base is not None else Path.cwd())
        chosen.update(found)
        unknown += [pattern] * (not found)
    if unknown:
        names = ", ".join(repr(p) for p in unknown)
        raise UnknownSourceError(f"{names}: no indexed document has this name, is in this folder or matches this pattern (see `rag-qa info --files`)")
    return [s for s in stored if s in chosen]


def _matches(pattern: str, stored: Sequence[str], known: set[str], base: Path) -> list[str]:
    if pattern in known:
        return [pattern]
    if "\x00" in pattern:  # names nothing (no path holds one)
        return []
    if GLOB_CHARACTERS & set(pattern):
        glob = Glob(_absolute_glob(pattern, base))
        return [s for s in stored if glob.matches(s)]
    path = str((base / os.path.expanduser(pattern)).resolve())
    return [s for s in stored if within(s, [path])]


def within(source: str, roots: Sequence[str]) -> bool:
    """Whether a stored name is one of `roots` or lies in a folder among them."""
    return any(source == root or source.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _absolute_glob(pattern: str, base: Path) -> str:
    """The glob as an absolute path: the part before the first wildcard resolved like a path."""
    parts = Path(os.path.expanduser(pattern)).parts
    fixed = next((i for i, part in enumerate(parts) if GLOB_CHARACTERS & set(part)), len(parts))
    return os.path.join(str((base / Path(*parts[:fixed])).resolve()) if fixed else str(base.resolve()), *parts[fixed:])


def display_name(source: str | None, base: str | os.PathLike[str] | None = None) -> str | None:
    """How output shows a stored name: relative to `base` (the current folder) when under it."""
    if source is None or not os.path.isabs(source):
        return source
    try:
        return str(Path(source).relative_to(Path(base) if base is not None else Path.cwd()))
    except ValueError:
        return source
