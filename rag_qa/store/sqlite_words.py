"""How many passages of a FAISS store's SQLite database hold each of some words (their document
frequency), a mixin of `PassageDatabase`: the retriever weighs each question word by its rarity
among the passages the caller may search, so that an answer whose passages lack the question's
rare words ("... on the moon") is trusted less."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from rag_qa.store.base import query_terms

# per connection: FTS5's count of the passages holding each term, in the whole index and among the
# readable passages that `_readable_words` put in temp.readable_words
WORD_TABLES = """
CREATE VIRTUAL TABLE IF NOT EXISTS temp.index_terms USING fts5vocab (main, passages_fts, row);
CREATE VIRTUAL TABLE IF NOT EXISTS temp.readable_terms USING fts5vocab (temp, readable_words, row);
"""


class PassageWords:
    """`passage_word_counts`, for `PassageDatabase`."""

    db: sqlite3.Connection  # PassageDatabase's, as are these four
    count: Callable[[], int]
    _tokens: Callable[[Sequence[str]], list[list[bytes]]]
    _readable_words: Callable[[Sequence[str]], dict[int, int]]
    _make_query_tables: Callable[[], Any]
    _word_tables = False  # this connection has made WORD_TABLES

    def passage_word_counts(self, words: Sequence[str], sources: Sequence[str] | None = None) -> tuple[int, list[int]]:
        """(passages searched, how many of them hold each word), a word matched as `search_text`
        matches it: Porter stems; a word of several parts ("e_mail") is held where any part is,
        one of none ("!!") nowhere. With `sources`, only their passages count, and only from
        the readable words (temp.readable_words, `_readable_words`): the whole table's postings
        are never read, so nothing hidden is counted and the work grows with what the caller may
        read, never with what it may not (as in `_search_text_within`)."""
        if sources is not None and not sources:
            return 0, [0] * len(words)
        total = self.count() if sources is None else len(self._readable_words(sources))
        if not total:  # nothing to count (and temp.readable_words may hold another caller's rows)
            return 0, [0] * len(words)
        self._make_word_tables()
        table, terms = ("passages_fts", "temp.index_terms") if sources is None else ("temp.readable_words", "temp.readable_terms")
        parts = [query_terms(word) for word in words]
        counts = []
        for word, tokens in zip(parts, self._tokens([" ".join(p) for p in parts])):
            if len(tokens) == 1:  # the passages holding the term, as FTS5 keeps it
                found = self.db.execute(f"SELECT doc FROM {terms} WHERE term = CAST(? AS TEXT)", tokens).fetchone()
            else:  # several parts: the passages matching any, as `search_text` matches them
                found = self.db.execute(f"SELECT count(*) FROM {table}(?)", (" OR ".join(f'"{p}"' for p in word),)).fetchone() if tokens else None
            counts.append(int(found[0]) if found else 0)
        return total, counts

    def _make_word_tables(self) -> None:
        if not self._word_tables:
            self._make_query_tables()  # temp.readable_words first
            for statement in WORD_TABLES.strip().splitlines():  # temp tables: a read-only connection may make them too
                self.db.execute(statement)
            self._word_tables = True
