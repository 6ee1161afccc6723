"""Reading less with the same decisions (`rag_qa.cascade`): each question's best-retrieved passage
first, the others only when they could still change the top answer or the decision to answer.

For each corpus, the same questions over the same retrieved passages (rag-qa's defaults: its
retrieval mode, top 5 passages widened into their neighbours, the shipped scoring of the v2
reader), read twice: every passage, and in stages. Reported: reader tokens read per question
(question and passage windows, as batched), the share of questions settled by their first
passage, seconds per question (all questions read in one batch; and the p50 of 100 read one at a
time), and agreement with reading everything: the same decision (answer
or abstain) and the same top answer text, and how far the top answer's confidence moved.

Corpora: SQuAD dev-eval over the open-domain corpus (dev-eval, reader-train and the distractor
paragraphs); the 49 COVID-QA papers.

Usage: python benchmarks/read_less.py [--questions 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time

from common import READER, SHARED, SQUAD, SQUAD_CORPUS, require_shared, table

ONE_AT_A_TIME = 100  # questions also read one at a time, as a person asks
CORPORA = {
    "SQuAD dev-eval (open)": (SQUAD / "dev-eval.json", SQUAD_CORPUS),
    "COVID-QA papers": (SHARED / "data" / "covidqa" / "dev.json", [SHARED / "data" / "covidqa" / "dev.json"]),
}


def tokens_read(reader, questions: list[str], passages: list[list[str]]) -> list[int]:  # noqa: ANN001
    """Reader tokens per question: every window of every passage given, question included."""
    return [sum(len(ids) for ids in reader._features([q] * len(p), p)["input_ids"]) if p else 0 for q, p in zip(questions, passages)]


def read_twice_share(hits) -> float:  # noqa: ANN001
    """The share of the characters read that another passage of the same question also holds
    (neighbouring chunks of one document, each widened into the other)."""
    total = twice = 0
    for found in hits:
        seen: dict[str | None, list[tuple[int, int]]] = {}
        for hit in found:
            start = hit.passage.char_start
            span = (start, start + len(hit.passage.text))
            total += span[1] - span[0]
            twice += sum(max(0, min(span[1], b) - max(span[0], a)) for a, b in seen.get(hit.passage.source, []))
            seen.setdefault(hit.passage.source, []).append(span)
    return twice / total if total else 0.0


def timed(read, *args):  # noqa: ANN001, ANN002, ANN201
    started = time.perf_counter()
    return read(*args), time.perf_counter() - started


def one_at_a_time(qa, questions: list[str], hits, texts) -> tuple[float, float]:  # noqa: ANN001
    """p50 seconds of reading one question at a time: every passage, and in stages."""
    from rag_qa.cascade import read_in_stages

    every, staged = [], []
    for question, found, passages in zip(questions, hits, texts):
        every.append(timed(qa.reader.read, [question], [passages])[1])
        staged.append(timed(read_in_stages, qa.reader.read, [question], [found], qa.scoring, qa._temperature())[1])
    return statistics.median(every), statistics.median(staged)


def compare(qa, questions: list[str]) -> dict:  # noqa: ANN001
    from rag_qa.cascade import UNREAD, read_in_stages

    scoring, temperature = qa.scoring, qa._temperature()
    hits = qa.retriever.retrieve(questions)
    texts = [[h.passage.text for h in found] for found in hits]
    qa.reader.read(questions[:2], texts[:2])  # warm up
    full, full_s = timed(qa.reader.read, questions, texts)
    (staged, unread), staged_s = timed(read_in_stages, qa.reader.read, questions, hits, scoring, temperature)
    same_decision = same_top = 0
    moved = []
    for question, found, every, some in zip(questions, hits, full, staged):
        a, b = qa._combine(question, found, every), qa._combine(question, found, some)
        same_decision += a.abstained == b.abstained
        top_a, top_b = (a.answers[0] if a.answers else None), (b.answers[0] if b.answers else None)
        same_top += (top_a and top_a.text) == (top_b and top_b.text)
        moved.append(abs((top_a.confidence if top_a else 0.0) - (top_b.confidence if top_b else 0.0)))
    one_all, one_staged = one_at_a_time(qa, questions[:ONE_AT_A_TIME], hits[:ONE_AT_A_TIME], texts[:ONE_AT_A_TIME])
    read_texts = [[t for t, r in zip(ts, rs) if r is not UNREAD] for ts, rs in zip(texts, staged)]
    before, after = tokens_read(qa.reader, questions, texts), tokens_read(qa.reader, questions, read_texts)
    n = len(questions)
    return {
        "questions": n, "tokens_before": statistics.mean(before), "tokens_after": statistics.mean(after),
        "settled_by_first": sum(all(r is UNREAD for r in rs[1:]) for rs in staged if rs) / n, "passages_unread": unread,
        "seconds_before": full_s / n, "seconds_after": staged_s / n, "one_at_a_time_p50_before": one_all, "one_at_a_time_p50_after": one_staged,
        "text_read_twice": read_twice_share(hits), "same_decision": same_decision / n, "same_top_answer": same_top / n,
        "confidence_moved_max": max(moved), "confidence_moved_mean": statistics.mean(moved),
    }  # fmt: skip


def run(limit: int) -> dict:
    require_shared()
    from rag_qa import RagQA
    from rag_qa.config import ReaderConfig
    from rag_qa.evaluate import index_squad_corpus
    from rag_qa.squad import load_squad

    result = {}
    for corpus, (asked, files) in CORPORA.items():
        questions = [q.question for q in load_squad(asked)]
        random.Random(0).shuffle(questions)
        with tempfile.TemporaryDirectory() as folder:
            with RagQA.open(folder) as qa:
                index_squad_corpus(qa, [str(f) for f in files])
            with RagQA.open(folder, reader=ReaderConfig(model=str(READER))) as qa:
                result[corpus] = compare(qa, questions[:limit])
    return result


def markdown(result: dict) -> str:
    keys = ["questions", "tokens_before", "tokens_after", "settled_by_first", "text_read_twice", "seconds_before", "seconds_after", "one_at_a_time_p50_before", "one_at_a_time_p50_after", "same_decision", "same_top_answer", "confidence_moved_max", "confidence_moved_mean"]
    return table(["corpus", *keys], [[corpus, *(row[k] for k in keys)] for corpus, row in result.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=300, help="questions per corpus (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    result = run(args.questions)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
