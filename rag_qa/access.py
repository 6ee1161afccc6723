"""Who may read and who may change which document: the rules the facade (and the Haystack
retrievers) apply for every caller. Who may *read* a document is the stores' `visible_sources`
(inside their queries), narrowed by `readable_sources` to keep a mail and its attachments together.

A caller is named by the access groups it reads with: None for an admin key, an open service or
the command line (every document), else its key's groups. A key with groups acts only within them:
it may add its own groups and nothing else, it must keep every group it does not hold, and it may
neither make a document public nor restrict a public one, since either would change who *outside*
its groups reads the document (hide it from them, or show it to them)."""

from __future__ import annotations

from collections.abc import Sequence

from rag_qa.errors import RagQAError
from rag_qa.ingest.mail import file_of
from rag_qa.store.protocol import PassageStore


class AccessDenied(RagQAError):
    """A caller may read a document but not change it this way (HTTP 403)."""


def readable_sources(store: PassageStore, groups: Sequence[str] | None) -> list[str] | None:
    """The stored names a holder of `groups` may read (None for None: every document): those
    without groups and those sharing one of `groups` (the store decides that inside its query),
    less the attachments of mails it may not read: a mail and its attachments are read together,
    so an attachment whose groups were left behind by an older version never shows alone."""
    if groups is None:
        return None
    visible = store.visible_sources(groups)
    shown = set(visible)
    return [s for s in visible if file_of(s) in shown]


def check_new_groups(caller: Sequence[str] | None, new: Sequence[str]) -> None:
    """A new document's groups: a key with groups may give only its own (at least one of them)."""
    if caller is None:
        return
    if not new and caller:
        raise AccessDenied(f"a key with groups may not add documents every key reads; give one of its groups ({', '.join(caller)})")
    foreign = sorted(set(new) - set(caller))
    if foreign:
        raise AccessDenied(f"a key may give documents only its own groups ({', '.join(caller) or 'none'}), not {', '.join(foreign)}")


def check_regroup(caller: Sequence[str] | None, old: Sequence[str], new: Sequence[str]) -> None:
    """A readable document's groups going from `old` to `new`: AccessDenied says why not."""
    if caller is None or set(old) == set(new):
        return
    mine, before, after = set(caller), set(old), set(new)
    if not before:
        raise AccessDenied("every key reads this document; a key with groups may not restrict it (an admin may)")
    if not after:
        raise AccessDenied("a key with groups may not make a document readable by every key (an admin may)")
    added, dropped = sorted(after - before - mine), sorted(before - mine - after)
    if added:
        raise AccessDenied(f"a key may give documents only its own groups ({', '.join(sorted(mine)) or 'none'}), not {', '.join(added)}")
    if dropped:
        raise AccessDenied(f"a key must keep the groups it does not hold: {', '.join(dropped)}")
