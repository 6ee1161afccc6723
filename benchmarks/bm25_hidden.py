"""Does a filtered BM25 search cost more when hidden documents use the query word? (issue 34, 6)

A key limited to some groups searches with BM25 over the passages it may read. If the search's
work grew with how often *hidden* passages hold a word, its latency would tell the key whether
hidden documents use that word. This builds SQLite indexes with the same readable passages
(`--readable-files` files of 10 passages, a third holding "ladder") written interleaved with
hidden files, and times the same filtered search ("ladder") with:

- no hidden passages;
- `--hidden` hidden passages that do not hold "ladder" (the control: as many hidden rows);
- `--hidden` hidden passages that all hold "ladder";

for the search before issue 34 (each word's postings read from the whole table, then filtered:
kept here as `search_before`), the FTS5 query restricted to runs of readable rowids (measured and
rejected: seeking to each run walks the hidden postings before it), and the search now (the
readable passages' own words, `PassageDatabase._readable_words`): warm (the same key again) and
cold (its readable words rebuilt for every search). Each cell is the median of `--repeat` runs, in
ms; "x" is the ratio to the no-hidden row. Usage:

    python benchmarks/bm25_hidden.py [--readable-files 200] [--hidden 20000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rag_qa.config import IndexSettings, VectorIndexConfig  # noqa: E402
from rag_qa.records import Document, Passage  # noqa: E402
from rag_qa.store.faiss_store import FaissStore  # noqa: E402
from rag_qa.store.sqlite_db import BM25_B, BM25_K1, PassageDatabase, _varint  # noqa: E402

FILLER = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma tau upsilon".split()
PER_FILE, WORDS = 10, 40


def build(folder: Path, readable_files: int, hidden: int, hidden_word: str) -> tuple[FaissStore, list[str]]:
    """An index of readable files (named r*) and hidden ones (h*), written in a shuffled order."""
    store = FaissStore.open(folder, IndexSettings(vector_index=VectorIndexConfig(index_type="flat")), dimension=4)
    rng = random.Random(0)
    files = [f"/docs/r{i}.txt" for i in range(readable_files)] + [f"/docs/h{i}.txt" for i in range(hidden // PER_FILE)]
    rng.shuffle(files)
    batch = []
    for source in files:
        passages = []
        for j in range(PER_FILE):
            words = [rng.choice(FILLER) for _ in range(WORDS)]
            if "/r" in source and j % 3 == 0:
                words[rng.randrange(WORDS)] = "ladder"
            if "/h" in source:
                words[rng.randrange(WORDS)] = hidden_word
            text = " ".join(words)
            passages.append(Passage(Passage.make_id(source, j, text), text, source, j * 400, j * 400 + len(text)))
        batch.append((Document(source, "", source, ()), passages))
        if len(batch) == 200:
            store.replace_files(batch, np.ones((len(batch) * PER_FILE, 4), np.float32))
            batch = []
    if batch:
        store.replace_files(batch, np.ones((len(batch) * PER_FILE, 4), np.float32))
    return store, [f"/docs/r{i}.txt" for i in range(readable_files)]


def search_before(db: PassageDatabase, terms: list[str], top_k: int, sources: list[str]) -> list[tuple[float, int]]:
    """The filtered search before issue 34: each word's postings over the whole table (fts5vocab)."""
    db.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.passage_postings USING fts5vocab (main, passages_fts, instance)")
    lengths = {row: _varint(size) for row, size in db.db.execute(
        "SELECT d.id, d.sz FROM passages_fts_docsize d JOIN passages p ON p.row = d.id WHERE p.source IN (SELECT value FROM json_each(?))",
        (json.dumps(sources),))}  # fmt: skip
    average, scores = sum(lengths.values()) / len(lengths), defaultdict(float)
    for term in [tokens[0] for tokens in db._tokens(terms) if tokens]:
        postings = db.db.execute("SELECT doc, count(*) FROM temp.passage_postings WHERE term = CAST(? AS TEXT) GROUP BY doc", (term,))
        counts = [(row, n) for row, n in postings if row in lengths]
        idf = max(math.log((len(lengths) - len(counts) + 0.5) / (len(counts) + 0.5)), 1e-6)
        for row, n in counts:
            scores[row] += idf * n * (BM25_K1 + 1) / (n + BM25_K1 * (1 - BM25_B + BM25_B * lengths[row] / average))
    return heapq.nlargest(top_k, ((score, -row) for row, score in scores.items()))


def search_in_runs(db: PassageDatabase, terms: list[str], top_k: int, sources: list[str]) -> list[tuple[float, int]]:
    """The alternative measured and rejected: FTS5 MATCH restricted to each run of consecutive
    readable rowids (term counts from highlight()). It reads no hidden row's postings, but each
    run's seek walks the doclist pages before it, hidden postings included."""
    lengths = {row: _varint(size) for row, size in db.db.execute(
        "SELECT d.id, d.sz FROM passages_fts_docsize d JOIN passages p ON p.row = d.id WHERE p.source IN (SELECT value FROM json_each(?))",
        (json.dumps(sources),))}  # fmt: skip
    rows, runs = sorted(lengths), []
    for row in rows:
        if runs and row == runs[-1][1] + 1:
            runs[-1][1] = row
        else:
            runs.append([row, row])
    average, scores = sum(lengths.values()) / len(lengths), defaultdict(float)
    for term in terms:
        counts = [(row, marked.count("\x01")) for row, marked in db.db.execute(
            "SELECT f.rowid, highlight(passages_fts, 0, char(1), char(2)) FROM json_each(?) s CROSS JOIN passages_fts f "
            "WHERE passages_fts MATCH ? AND f.rowid BETWEEN s.value ->> 0 AND s.value ->> 1", (json.dumps(runs), f'"{term}"'))]  # fmt: skip
        idf = max(math.log((len(lengths) - len(counts) + 0.5) / (len(counts) + 0.5)), 1e-6)
        for row, n in counts:
            scores[row] += idf * n * (BM25_K1 + 1) / (n + BM25_K1 * (1 - BM25_B + BM25_B * lengths[row] / average))
    return heapq.nlargest(top_k, ((score, -row) for row, score in scores.items()))


def searches(store: FaissStore, sources: list[str]) -> dict[str, Callable[[], object]]:
    """The searches compared, after checking that the search now scores as the one before."""
    db = store._database

    def cold() -> None:
        db._readable_rows = ()  # as if another key had searched in between
        store.search_text("ladder", 10, sources)

    now = [round(h.score, 9) for h in store.search_text("ladder", 10, sources)]
    assert now == [round(score, 9) for score, _ in search_before(db, ["ladder"], 10, sources)], "the search now must score as before"
    return {
        "before": lambda: search_before(db, ["ladder"], 10, sources),
        "rowid runs": lambda: search_in_runs(db, ["ladder"], 10, sources),
        "now, warm": lambda: store.search_text("ladder", 10, sources),
        "now, cold": cold,
    }


def measure(cases: list[dict[str, Callable[[], object]]], repeat: int) -> list[dict[str, float]]:
    """Median ms of each search in each case. One search at a time, its runs interleaved over the
    cases (round robin), so that a busy moment of the machine falls on every case alike and no
    run follows another search (a slow one leaves the caches cold for the next)."""
    times: list[dict[str, list[float]]] = [defaultdict(list) for _ in cases]
    for name in cases[0]:
        for run in range(repeat + 1):
            for case, spent in zip(cases, times):
                started = time.perf_counter()
                case[name]()
                if run:  # the first run warms up
                    spent[name].append(time.perf_counter() - started)
    return [{name: statistics.median(values) * 1000 for name, values in spent.items()} for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readable-files", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=20000, help="hidden passages")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    cases = [("none", 0, "ladder"), (f"{args.hidden}, without the word", args.hidden, "unrelated"), (f"{args.hidden}, all with it", args.hidden, "ladder")]
    with tempfile.TemporaryDirectory() as scratch:
        built = [build(Path(scratch) / str(i), args.readable_files, hidden, word) for i, (_, hidden, word) in enumerate(cases)]
        medians = measure([searches(store, sources) for store, sources in built], args.repeat)
        for store, _ in built:
            store.close()
    rows = [(label, cells) for (label, _, _), cells in zip(cases, medians)]
    readable = args.readable_files * PER_FILE
    print(f"filtered BM25 search for 'ladder' over {readable} readable passages ({args.readable_files} files), median of {args.repeat} (ms; x = ratio to no hidden passages)")
    columns = list(rows[0][1])
    print(f"{'hidden passages':32}" + "".join(f"{c:>22}" for c in columns))
    for label, cells in rows:
        print(f"{label:32}" + "".join(f"{cells[c]:>13.2f} ({cells[c] / rows[0][1][c]:4.1f}x)" for c in columns))
    without, with_word = rows[1][1], rows[2][1]
    print(f"{'hidden with / without the word':32}" + "".join(f"{with_word[c] / without[c]:>21.2f}x" for c in columns))


if __name__ == "__main__":
    main()
