"""rag-qa against a Haystack 3 pipeline with the same weights, on any SQuAD-format file (issue 35).

The file's paragraphs (plus --corpus files) are the corpus; --sample N questions, drawn with
--seed, are asked against all of it. Side by side:
- `rag-qa eval open` as the command runs it (rag_qa.evaluate: a fresh index, the scoring shipped
  for the offline reader, the default answer cap), once per --modes retrieval mode, over one index
  (--chunk-tokens: its passage size in embedder tokens; default the index default, 200);
- the Haystack 3 pipeline of benchmarks/end_to_end.py (SentenceTransformers embedders, FAISS,
  TransformersExtractiveReader, its own no-answer rule), its documents cut into --words-word
  chunks (DocumentSplitter, 150 by default) as a Haystack user would.
One row per system: F1 at the system's own operating point, forced-answer F1 (answerable questions,
best span always given), passage recall@5 (a retrieved passage holds a gold answer at its offsets;
"as read": one of the 5 passages the reader reads, widened into their neighbours), document recall@5 (a retrieved passage comes from the question's paragraph/paper), % of answerable
questions abstained on, top-answer ECE (the best span's confidence vs its F1), AURC.

Usage: python benchmarks/haystack_compare.py --data FILE [--corpus MORE ...] [--sample N --seed S]
           [--modes dense bm25 hybrid] [--policies default careful balanced eager] [--chunk-tokens T] [--max-answer-tokens N] [--runtime R] [--threads N]
           [--words W] [--no-haystack] [--plot FILE.png] [--json]
       python benchmarks/haystack_compare.py --merge RUN.json ... [--plot FILE.png] [--json]   (earlier --json runs, one table)
Example (docs/benchmarks.md section 15): python benchmarks/haystack_compare.py --data ../shared/data/covidqa/dev.json
           --sample 300 --seed 0 --plot docs/issue35-covidqa-risk-coverage.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import Any

from rag_qa.config import ANSWER_POLICIES

from common import READER, embedder_path, haystack_query_pipeline, require_peer, require_shared, table

MODES = ("dense", "bm25", "hybrid")
HAYSTACK = "Haystack 3"


def rag_qa_rows(
    files: list[str], questions: list, modes: list[str], chunk_tokens: int | None, top_k: int, runtime: str | None, threads: int | None = None,
    cap: int | None = None, policies: list[str | None] = [None],
) -> dict[str, dict]:  # fmt: skip
    """`rag-qa eval open` (cmd_eval_open's calls), one index, each retrieval mode and answer policy
    (None: the default, the fit shipped for the reader) over it."""
    from rag_qa import RagQA
    from rag_qa.config import ChunkingConfig, IndexSettings, ReaderConfig, RetrievalConfig
    from rag_qa.evaluate import evaluate_open, index_squad_corpus

    settings = IndexSettings(chunking=ChunkingConfig(max_tokens=chunk_tokens)) if chunk_tokens else None
    rows = {}
    with tempfile.TemporaryDirectory(prefix="haystack-compare-") as folder:
        with RagQA.open(folder, settings, runtime=runtime, threads=threads) as qa:
            started = time.perf_counter()
            index_squad_corpus(qa, files)
            passages, chunking = qa.store.count(), qa.store.settings.chunking.max_tokens
            print(f"rag-qa: {passages} passages of <= {chunking} tokens in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for mode, policy in [(m, p) for m in modes for p in policies]:
            reader = ReaderConfig(model=str(READER), **({"max_answer_tokens": cap} if cap else {}))
            retrieval = RetrievalConfig(mode=mode, top_k=top_k)
            with RagQA.open(folder, reader=reader, retrieval=retrieval, runtime=runtime, threads=threads, answer_policy=policy) as qa:
                qa.embedder.warm_up()
                qa.reader.warm_up()  # loading (and a first ONNX export) is not question time
                started = time.perf_counter()
                metrics = evaluate_open(qa, questions)
                metrics.update(passages=passages, chunk_tokens=chunking, seconds=time.perf_counter() - started)
            rows[f"rag-qa {mode}" + (f" {policy}" if policy else "") + f" ({chunking}-token passages" + (f", cap {cap})" if cap else ")")] = metrics
            print(f"rag-qa {mode}: F1 {metrics['f1']:.1f} in {metrics['seconds']:.0f} s", file=sys.stderr)
    return rows


def haystack_row(files: list[str], paragraph_files: list[str], questions: list, words: int, top_k: int) -> dict[str, Any]:
    """The Haystack pipeline of benchmarks/end_to_end.py, over `words`-word chunks of the corpus."""
    from haystack import Document
    from haystack.components.preprocessors import DocumentSplitter
    from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersDocumentEmbedder
    from haystack_integrations.document_stores.faiss import FAISSDocumentStore

    from rag_qa.evaluate import answer_f1, reliability, risk_coverage, squad_metrics, threshold_free_metrics
    from rag_qa.squad import squad_corpus

    started = time.perf_counter()
    documents = [Document(content=d.text, meta={"hash": d.content_hash}) for d in squad_corpus(files, paragraph_files)]
    chunks = DocumentSplitter(split_by="word", split_length=words, split_overlap=0).run(documents)["documents"]
    store = FAISSDocumentStore(embedding_dim=384)
    embedder = SentenceTransformersDocumentEmbedder(model=embedder_path(), normalize_embeddings=True, progress_bar=False)
    embedder.warm_up()
    store.write_documents(embedder.run(chunks)["documents"])
    print(f"Haystack: {len(chunks)} chunks of {words} words in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    pipeline = haystack_query_pipeline(store, top_k)
    predictions, spans, na_probs, confidences, correct, document_hits, passage_hits = {}, {}, {}, [], [], [], []
    started = time.perf_counter()
    for q in questions:
        out = pipeline.run({"embedder": {"text": q.question}, "reader": {"query": q.question}}, include_outputs_from={"retriever"})
        answers = sorted(out["reader"]["answers"], key=lambda a: -a.score)
        best = next((a for a in answers if a.data), None)
        predictions[q.id] = answers[0].data or ""  # its no-answer rule: the no-answer score beats every span
        spans[q.id] = best.data if best else ""
        na_probs[q.id] = next((a.score for a in answers if a.data is None), 1.0 - (best.score if best else 0.0))
        confidences.append(best.score if best else 0.0)
        correct.append(answer_f1(q, best.data) if best else 0.0)  # as rag-qa's: the confidence against the answer's F1
        if q.has_answer:
            found = [d for d in out["retriever"]["documents"] if d.meta["hash"] == q.context_hash]
            document_hits.append(bool(found))
            if q.answer_spans():
                passage_hits.append(any(_holds(d, q.answer_spans()) for d in found))
    seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {**squad_metrics(questions, predictions, na_probs), **threshold_free_metrics(questions, spans, na_probs)}
    answerable = [q for q in questions if q.has_answer]
    top = reliability(confidences, correct)
    metrics.update({
        "abstained_on_answerable": 100.0 * sum(predictions[q.id] == "" for q in answerable) / max(1, len(answerable)),
        "recall@5": sum(document_hits) / max(1, len(document_hits)), "passage_recall@5": sum(passage_hits) / max(1, len(passage_hits)),
        "read_passage_recall": sum(passage_hits) / max(1, len(passage_hits)),
        "top_answer_ece": top["ece"], "reliability": top["bins"], "risk_coverage": risk_coverage(questions, spans, na_probs, predictions),
        "passages": len(chunks), "chunk_words": words, "questions": len(questions), "seconds": seconds, "questions_per_second": len(questions) / seconds,
    })  # fmt: skip
    print(f"Haystack: F1 {metrics['f1']:.1f} in {seconds:.0f} s", file=sys.stderr)
    return metrics


def _holds(chunk: Any, spans: list[tuple[int, int]]) -> bool:
    """The chunk (DocumentSplitter keeps its character offset in the document) holds a gold answer."""
    start = chunk.meta.get("split_idx_start", -1)
    return start >= 0 and any(start <= a and b <= start + len(chunk.content) for a, b in spans)


COLUMNS = [("F1", "f1"), ("forced-answer F1", "forced_HasAns_f1"), ("passage recall@5", "passage_recall@5"),
           ("passage recall@5 as read", "read_passage_recall"), ("document recall@5", "recall@5"),
           ("% answerable abstained", "abstained_on_answerable"), ("top-answer ECE", "top_answer_ece"), ("AURC", "aurc"),
           ("passages", "passages"), ("s", "seconds")]  # fmt: skip


def above_from(curve: dict[str, list], peer: dict[str, list]) -> float | None:
    """The least coverage from which `curve` (mean F1 of the answers given) is at or above `peer`'s
    at every coverage up to 100%; None when it ends below."""
    pairs = [(c, f, g) for c, f, g in zip(curve["coverage"], curve["answer_f1"], peer["answer_f1"]) if f is not None and g is not None]
    start = None
    for coverage, ours, theirs in reversed(pairs):
        if ours < theirs:
            break
        start = coverage
    return start


def markdown(result: dict[str, Any]) -> str:
    systems = result["systems"]
    peer = next((m["risk_coverage"] for name, m in systems.items() if name.startswith(HAYSTACK)), None)
    columns = COLUMNS + ([("curve above Haystack's from coverage %", "above_from")] if peer else [])
    for name, m in systems.items():
        if peer and not name.startswith(HAYSTACK):
            m["above_from"] = above_from(m["risk_coverage"], peer)
    rows = [[name] + [m.get(key, float("nan")) for _, key in columns] for name, m in systems.items()]
    return table(["system"] + [c for c, _ in columns], rows) + (
        f"\n\n{result['questions']} questions ({result['answerable']} answerable) from {result['data']} (seed {result['seed']}), "
        f"top {result['top_k']}. F1 and forced-answer F1 in %, recall and ECE as fractions, AURC in % (lower is better)."
    )


def plot(result: dict[str, Any], path: str) -> None:
    """Both systems' risk-coverage curves (mean F1 of the answers given as coverage grows), with
    each system's own operating point."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.subplots()
    colours = ["#1f5fbf", "#2e8b57", "#8e44ad", "#e07b00", "#7a7a7a", "#c0392b"]
    drawn: list[list] = []  # rows of one system at other answer policies share its curve: drawn once
    for (name, metrics), colour in zip(result["systems"].items(), colours):
        curve = metrics["risk_coverage"]
        point = curve["operating_point"]
        if curve["answer_f1"] in drawn:
            axes.scatter([point["coverage"]], [point["answer_f1"]], marker="*", s=140, color=colour, zorder=3, label=f"{name} (★ only: the same curve)")
            continue
        drawn.append(curve["answer_f1"])
        given = [(c, f) for c, f in zip(curve["coverage"], curve["answer_f1"]) if f is not None]
        style = "--" if name.startswith(HAYSTACK) else "-"
        axes.plot([c for c, _ in given], [f for _, f in given], style, color=colour, label=f"{name} (AURC {metrics['aurc']:.1f})")
        axes.scatter([point["coverage"]], [point["answer_f1"]], marker="*", s=140, color=colour, zorder=3)
    axes.set(xlim=(0, 101), ylim=(0, 101), xlabel="coverage: % of questions answered", ylabel="mean F1 of the answers given (%)",
             title=f"Risk-coverage, {result['questions']} questions of {'/'.join(result['data'].split('/')[-2:])} (★ operating point)")  # fmt: skip
    axes.title.set_fontsize(9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def run(args: argparse.Namespace) -> dict[str, Any]:
    require_shared()
    from rag_qa.squad import load_squad, sample_questions

    questions = sample_questions(load_squad(args.data), args.sample, args.seed)
    files = [args.data, *[f for f in args.corpus if not f.endswith(".jsonl")]]
    systems = {}
    if not args.no_haystack:
        require_peer()
        systems[f"{HAYSTACK} ({args.words}-word chunks)"] = haystack_row(files, [f for f in args.corpus if f.endswith(".jsonl")], questions, args.words, args.top_k)
    policies = [None if p == "default" else p for p in args.policies]
    systems.update(rag_qa_rows([args.data, *args.corpus], questions, args.modes, args.chunk_tokens, args.top_k, args.runtime, args.threads, args.max_answer_tokens, policies))
    return {"data": args.data, "corpus": args.corpus, "sample": args.sample, "seed": args.seed, "top_k": args.top_k, "questions": len(questions),
            "answerable": sum(q.has_answer for q in questions), "systems": systems}  # fmt: skip


def merged(paths: list[str]) -> dict[str, Any]:
    """The rows of earlier `--json` runs as one result, refusing runs of other questions."""
    results = [json.load(open(path)) for path in paths]
    asked = {(r["data"], r["sample"], r["seed"], r["top_k"]) for r in results}
    if len(asked) > 1:
        sys.exit(f"--merge: these runs asked different questions (data, sample, seed, top_k): {sorted(asked)}")
    return {**results[0], "systems": {name: m for r in results for name, m in r["systems"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", metavar="FILE", help="SQuAD-format JSON file: its paragraphs are indexed, its questions asked")
    parser.add_argument("--corpus", nargs="*", default=[], metavar="MORE", help="more paragraphs (.json SQuAD files, .jsonl {title, paragraph, text})")
    parser.add_argument("--sample", type=int, metavar="N", help="ask N questions drawn at random (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=5, help="passages read per question (default: %(default)s)")
    parser.add_argument("--modes", nargs="*", choices=MODES, default=list(MODES), help="rag-qa retrieval modes (default: all; none: --modes)")
    parser.add_argument("--policies", nargs="+", choices=["default", *ANSWER_POLICIES], default=["default"], help="rag-qa answer policies, a row each (default: the default)")
    parser.add_argument("--chunk-tokens", type=int, metavar="T", help="rag-qa passage size in embedder tokens (default: the index default)")
    parser.add_argument("--max-answer-tokens", type=int, metavar="N", help="rag-qa's answer cap (default: as `rag-qa eval open`)")
    parser.add_argument("--runtime", choices=["auto", "torch", "onnx"], help="rag-qa's runtime (default: as `rag-qa eval open`)")
    parser.add_argument("--threads", type=int, help="rag-qa's threads (default: as `rag-qa eval open`); set OMP_NUM_THREADS for Haystack's")
    parser.add_argument("--words", type=int, default=150, help="Haystack chunk size in words (default: %(default)s)")
    parser.add_argument("--no-haystack", action="store_true", help="rag-qa rows only")
    parser.add_argument("--plot", metavar="FILE.png", help="draw every system's risk-coverage curve into FILE.png")
    parser.add_argument("--json", action="store_true", help="print JSON (the table goes to stderr)")
    parser.add_argument("--merge", nargs="+", metavar="RUN.json", help="run nothing: one table (and --plot) from earlier --json runs of the same questions")
    args = parser.parse_args()
    if not args.merge and not args.data:
        parser.error("--data FILE is required (or --merge RUN.json ...)")
    result = merged(args.merge) if args.merge else run(args)
    if args.plot:
        plot(result, args.plot)
    if args.json:
        print(markdown(result), file=sys.stderr)
        print(json.dumps(result))
    else:
        print(markdown(result))


if __name__ == "__main__":
    main()
