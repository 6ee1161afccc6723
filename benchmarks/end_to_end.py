"""End-to-end open-domain QA on the shared SQuAD corpus (every paragraph of dev-eval.json,
reader-train.json and distractor-passages.jsonl, ~1,000): rag-qa vs a Haystack 3 pipeline with
the same embedder and reader weights (FAISSDocumentStore, SentenceTransformers embedders,
TransformersExtractiveReader), and rag-qa's three retrieval modes (the default, hybrid, and the
other two). rag-qa's scoring is fitted (`calibrate`, objective f1) on two dev-eval articles; every
system is scored on the third, which none saw: French_and_Indian_War. Rows "(fitted, policy:NAME)": the same fit at an
answer policy's threshold (`calibrate --objective policy:NAME`).

Usage: python benchmarks/end_to_end.py [--top-k K] [--variants 'rag-qa onnx' ...] [--modes [dense bm25]] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from rag_qa.config import RETRIEVAL_MODES, RetrievalConfig

from common import READER, SQUAD, embedder_path, haystack_query_pipeline, require_peer, require_shared, table

REPORT_ARTICLE = "French_and_Indian_War"


VARIANTS = {"rag-qa torch": {"runtime": "torch"}, "rag-qa onnx": {"runtime": "onnx"}, "rag-qa onnx int8": {"runtime": "onnx", "int8": True}}
DEFAULT_MODE = RetrievalConfig().mode
OTHER_MODES = tuple(m for m in RETRIEVAL_MODES if m != DEFAULT_MODE)  # also measured end to end (PyTorch, fitted)
POLICIES = ("policy:balanced", "policy:careful")  # the default, and the policy for a corpus where most questions have no answer
POLICY_VARIANT = "rag-qa onnx"  # the variant also fitted at each policy
PEER = "Haystack 3 pipeline"


def run_ours(documents, fit, report, top_k: int, variants: list[str], modes: list[str]) -> dict:
    """One index; each runtime and precision asks over it with scoring fitted for itself."""
    from rag_qa import RagQA
    from rag_qa.calibration import fit_scoring, read_once
    from rag_qa.config import ReaderConfig, RetrievalConfig, ScoringConfig
    from rag_qa.evaluate import evaluate_open
    from rag_qa.indexer import add_documents

    systems, scoring = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        with RagQA.open(folder) as qa:
            started = time.perf_counter()
            add_documents(documents, qa.store, qa.embedder)
            index_seconds = time.perf_counter() - started
        for name, options in ((n, o) for n, o in VARIANTS.items() if n in variants):
            reader = ReaderConfig(model=str(READER), **options)
            with RagQA.open(folder, reader=reader, retrieval=RetrievalConfig(top_k=top_k), scoring=ScoringConfig(), runtime=reader.runtime) as qa:
                qa.embedder.warm_up()
                qa.reader.warm_up()  # loading (and a first ONNX export) is not question time
                if name == "rag-qa torch":
                    systems[f"{name} (defaults)"] = evaluate_open(qa, report)
                fit_readings = read_once(qa, fit)
                qa.scoring, _ = fit_scoring(fit_readings, DEFAULT_MODE)
                systems[f"{name} (fitted)"] = evaluate_open(qa, report)
                scoring[name] = qa.scoring.to_dict()
                if name == POLICY_VARIANT:
                    for objective in POLICIES:  # the same fit at each answer policy's threshold
                        qa.scoring, _ = fit_scoring(fit_readings, DEFAULT_MODE, objective=objective)
                        systems[f"{name} (fitted, {objective})"] = evaluate_open(qa, report)
        for mode in modes:
            with RagQA.open(folder, reader=ReaderConfig(model=str(READER), runtime="torch"), retrieval=RetrievalConfig(mode=mode, top_k=top_k), runtime="torch") as qa:
                qa.embedder.warm_up()
                qa.reader.warm_up()
                qa.scoring, _ = fit_scoring(read_once(qa, fit), mode)
                systems[f"rag-qa torch {mode} (fitted)"] = evaluate_open(qa, report)
                scoring[f"rag-qa torch {mode}"] = qa.scoring.to_dict()
    return {"systems": systems, "scoring": scoring, "index_seconds": index_seconds}


def run_haystack(documents, report, top_k: int) -> dict:
    from haystack import Document, Pipeline
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )
    from haystack_integrations.components.retrievers.faiss import FAISSEmbeddingRetriever
    from haystack_integrations.document_stores.faiss import FAISSDocumentStore

    from rag_qa.evaluate import RECALL_AT, expected_calibration_error, exact_score, squad_metrics, threshold_free_metrics

    store = FAISSDocumentStore(embedding_dim=384)
    embedder = SentenceTransformersDocumentEmbedder(model=embedder_path(), normalize_embeddings=True, progress_bar=False)
    embedder.warm_up()
    started = time.perf_counter()
    docs = [Document(content=d.text, meta={"source": d.source}) for d in documents]
    store.write_documents(embedder.run(docs)["documents"])
    index_seconds = time.perf_counter() - started

    pipeline = haystack_query_pipeline(store, top_k)
    predictions, spans, na_probs, ranks, confidences, correct = {}, {}, {}, [], [], []
    started = time.perf_counter()
    for q in report:
        out = pipeline.run({"embedder": {"text": q.question}, "reader": {"query": q.question}})
        answers = sorted(out["reader"]["answers"], key=lambda a: -a.score)
        top = answers[0]
        predictions[q.id] = top.data or ""
        spans[q.id] = next((a.data for a in answers if a.data), "")
        na_probs[q.id] = next((a.score for a in answers if a.data is None), 0.0)
        confidences.append(top.score)
        correct.append(any(exact_score(g, top.data) for g in q.answers) if top.data else not q.has_answer)
    seconds = time.perf_counter() - started
    retrieval = Pipeline()  # recall@k needs the top 20: a separate, untimed retrieval pass
    retrieval.add_component("embedder", SentenceTransformersTextEmbedder(model=embedder_path(), normalize_embeddings=True, progress_bar=False))
    retrieval.add_component("retriever", FAISSEmbeddingRetriever(document_store=store, top_k=max(RECALL_AT)))
    retrieval.connect("embedder.embedding", "retriever.query_embedding")
    for q in report:
        if q.has_answer:
            found = retrieval.run({"embedder": {"text": q.question}})["retriever"]["documents"]
            sources = [d.meta["source"] for d in found]
            wanted = q.source
            ranks.append(sources.index(wanted) + 1 if wanted in sources else None)
    metrics = {**squad_metrics(report, predictions, na_probs), **threshold_free_metrics(report, spans, na_probs)}
    abstained = [predictions[q.id] == "" for q in report]
    unanswerable = [not q.has_answer for q in report]
    hits = sum(a and u for a, u in zip(abstained, unanswerable))
    metrics.update({f"recall@{k}": sum(1 for r in ranks if r and r <= k) / len(ranks) for k in RECALL_AT})
    metrics["passage_recall@5"] = metrics["recall@5"]  # its passages are whole paragraphs: the paragraph holds the answer
    metrics.update({
        "mrr": sum(1 / r for r in ranks if r) / len(ranks),
        "abstention_precision": hits / max(1, sum(abstained)),
        "abstention_recall": hits / max(1, sum(unanswerable)),
        "expected_calibration_error": expected_calibration_error(confidences, correct),
        "questions_per_second": len(report) / seconds,
    })  # fmt: skip
    return {"metrics": metrics, "index_seconds": index_seconds}


def run(top_k: int = 5, variants: list[str] = list(VARIANTS), modes: list[str] = list(OTHER_MODES)) -> dict:
    require_shared()
    require_peer()
    from rag_qa.squad import load_squad, squad_corpus

    documents = squad_corpus([SQUAD / "dev-eval.json", SQUAD / "reader-train.json"], [SQUAD / "distractor-passages.jsonl"])
    questions = load_squad(SQUAD / "dev-eval.json")
    fit = [q for q in questions if q.title != REPORT_ARTICLE]
    report = [q for q in questions if q.title == REPORT_ARTICLE]
    ours = run_ours(documents, fit, report, top_k, variants, modes)
    peer = run_haystack(documents, report, top_k)
    systems = {**ours["systems"], PEER: peer["metrics"]}
    speedup = {name: m["questions_per_second"] / peer["metrics"]["questions_per_second"] for name, m in ours["systems"].items()}
    return {"paragraphs": len(documents), "fit_questions": len(fit), "report_questions": len(report), "top_k": top_k,
            "systems": systems, "speedup": speedup, "scoring": ours["scoring"],
            "index_seconds": {"rag-qa": ours["index_seconds"], PEER: peer["index_seconds"]}}  # fmt: skip


KEYS = ["exact", "f1", "HasAns_f1", "NoAns_exact", "best_f1", "forced_HasAns_f1", "always_abstain_f1", "aurc", "abstention_precision",
        "abstention_recall", "recall@1", "recall@5", "recall@20", "mrr", "passage_recall@5", "expected_calibration_error", "questions_per_second"]  # fmt: skip


def markdown(result: dict) -> str:
    rows = [[name] + [metrics.get(k, float("nan")) for k in KEYS] for name, metrics in result["systems"].items()]
    speedups = ", ".join(f"{name} {value:.2f}x" for name, value in result["speedup"].items())
    return table(["system"] + KEYS, rows) + (
        f"\n\n{result['report_questions']} held-out questions over {result['paragraphs']} paragraphs, top {result['top_k']} passages. "
        f"Questions per second over Haystack's: {speedups}. best_f1, forced_HasAns_f1, always_abstain_f1 and aurc as in section 1. "
        "recall@k: the question's paragraph among the top k; passage_recall@5: a passage holding a gold answer at its offsets "
        "(the Haystack pipeline indexes whole paragraphs, so for it the two are one)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top-k", type=int, default=5, help="passages read per question (default: %(default)s)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="NAME",
                        help=f"rag-qa systems on the default retrieval ({DEFAULT_MODE}), of: {', '.join(repr(v) for v in VARIANTS)} (default: all)")
    parser.add_argument("--modes", nargs="*", choices=list(OTHER_MODES), default=list(OTHER_MODES), help="other retrieval modes, on PyTorch (default: %(default)s; none: --modes)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    result = run(args.top_k, args.variants, args.modes)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
