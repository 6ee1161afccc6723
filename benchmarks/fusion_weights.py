"""Passage recall of each retrieval mode, and of hybrid at several weights of its BM25 list, as the
reader reads the passages (top 5, widened into their neighbours), on COVID-QA's 49 papers and on the
shared SQuAD corpus (~1,000 paragraphs, dev-eval's questions): retrieval only, no reader (issue 35).

Usage: python benchmarks/fusion_weights.py [--weights 0.5 1 1.5 2 3] [--top-k 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile

from rag_qa.retrieve import Retriever, fuse

from common import SQUAD, SQUAD_CORPUS, require_shared, table

COVID = SQUAD.parent / "covidqa" / "dev.json"
CORPORA = {
    "COVID-QA papers": ([COVID], COVID),
    "SQuAD corpus": (SQUAD_CORPUS, SQUAD / "dev-eval.json"),
}


class WeightedRetriever(Retriever):
    """Hybrid retrieval whose BM25 list counts `bm25_weight` times the dense list in the fusion."""

    def __init__(self, retriever: Retriever, bm25_weight: float):
        super().__init__(retriever.store, retriever.embedder, retriever.config)
        self.bm25_weight = bm25_weight

    def _fuse(self, dense, sparse, top_k):  # noqa: ANN001, ANN202 (the base class's types)
        return fuse([dense, sparse], top_k, self.config.rrf_k, weights=(1.0, self.bm25_weight))


def recall_as_read(files: list, questions_file, weights: list[float], top_k: int) -> dict[str, dict[str, float]]:
    from rag_qa import RagQA
    from rag_qa.evaluate import _content_hashes, _retrieval_metrics, index_squad_corpus
    from rag_qa.squad import load_squad

    questions = [q for q in load_squad(questions_file) if q.has_answer]
    texts = [q.question for q in questions]
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        with RagQA.open(folder) as qa:
            index_squad_corpus(qa, [str(f) for f in files])
            content = _content_hashes(qa)
            retrievers = {mode: (qa.retriever, mode) for mode in ("dense", "bm25")}
            retrievers.update({f"hybrid, BM25 weight {w:g}": (WeightedRetriever(qa.retriever, w), "hybrid") for w in weights})
            for name, (retriever, mode) in retrievers.items():
                found = _retrieval_metrics(questions, retriever.retrieve(texts, top_k=top_k, mode=mode), content)
                rows[name] = {"questions": found["passage_recall_questions"], "recall": found[f"passage_recall@{top_k}"], "recall@1": found["passage_recall@1"]}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 3.0], help="weights of hybrid's BM25 list (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=5, help="passages read per question (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    require_shared()
    result = {name: recall_as_read(files, questions, args.weights, args.top_k) for name, (files, questions) in CORPORA.items()}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for corpus, rows in result.items():
        print(f"\n{corpus} ({next(iter(rows.values()))['questions']} answerable questions)\n")
        print(table(["retrieval", f"passage recall@{args.top_k} as read", "passage recall@1 as read"], [[n, r["recall"], r["recall@1"]] for n, r in rows.items()]))


if __name__ == "__main__":
    main()
