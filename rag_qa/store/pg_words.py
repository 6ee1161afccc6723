"""How many passages of a PostgreSQL index hold each of some words (their document frequency), a
mixin of `PgStore`: the retriever weighs each question word by its rarity among the passages the
caller may search, so that an answer whose passages lack the question's rare words ("... on the
moon") is trusted less."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from rag_qa.store.base import query_terms

HOLDS = "tsv @@ to_tsquery('english', %s)"  # as `search_text` matches a word: English stems, no stop words


class PgWords:
    """`passage_word_counts`, for `PgStore`."""

    _sql: Callable[[str], Any]  # PgStore's, as is this
    _connection: Callable[[], AbstractContextManager[Any]]

    def passage_word_counts(self, words: Sequence[str], sources: Sequence[str] | None = None) -> tuple[int, list[int]]:
        """(passages searched, how many of them hold each word), a word matched as `search_text`
        matches it: sanitised by `query_terms`, English stems, a stop word ("the") held nowhere, a
        word of several parts ("e_mail") held where any part is, one of none ("!!") nowhere. One
        statement: without `sources`, each word's count through the full-text index; with them,
        one pass over their passages alone (found by source), every word tested on each: the
        hidden passages' words are never read, so they neither count nor change the work."""
        if sources is not None and not sources:
            return 0, [0] * len(words)
        queries = [" | ".join(query_terms(word)) for word in words]
        asked = [i for i, query in enumerate(queries) if query]  # a word of no parts: no query (to_tsquery would warn)
        if sources is None:
            select = ["(SELECT count(*) FROM {s}.passages)", *[f"(SELECT count(*) FROM {{s}}.passages WHERE {HOLDS})"] * len(asked)]
            statement, params = "SELECT " + ", ".join(select), [queries[i] for i in asked]
        else:
            select = ["count(*)", *[f"count(*) FILTER (WHERE {HOLDS})"] * len(asked)]
            statement, params = "SELECT " + ", ".join(select) + " FROM {s}.passages WHERE source = ANY(%s)", [*(queries[i] for i in asked), list(sources)]
        with self._connection() as db:
            total, *found = db.execute(self._sql(statement), params).fetchone()
        counts = [0] * len(words)
        for i, count in zip(asked, found):
            counts[i] = int(count)
        return int(total), counts
