"""How the answer path uses its evidence, measured open-domain on the shared SQuAD corpus (every
paragraph of dev-eval.json, reader-train.json and distractor-passages.jsonl): the retrieval mode,
and each scoring rule against the rule it replaced.

Each retrieval mode reads the dev-eval questions once (top 5 passages); every scoring variant is
then applied to the cached readings. The scoring is fitted (`calibrate`'s grid, objective f1) on
two dev-eval articles and reported on the third (calibrate's own split), which it never saw.

Variants (each differs from "current" in one rule):
- current: the product as it is.
- per-window normaliser: a passage's span probabilities divide by the sum over every window's
  spans, so a span seen by two overlapping windows counts twice (the previous rule).
- confidence from the margin: the top answer's confidence is fitted on the question's margin (the
  best passage's span - null), whichever passage the top-ranked answer came from (the previous rule).
- confidence from the answer's raw score: fitted on the top answer's ranking score itself rather
  than on the logit of its probability (what "current" uses).

Usage: python benchmarks/answer_path.py [--reader DIR] [--modes dense bm25 hybrid] [--window 384 128] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import tempfile
from collections.abc import Iterator

import numpy as np
from common import READER, SQUAD, require_shared, table

KEYS = ["exact", "f1", "HasAns_f1", "NoAns_exact", "coverage", "answer_f1", "best_f1", "forced_HasAns_f1", "aurc",
        "top_answer_ece", "expected_calibration_error"]  # fmt: skip


def per_window_log_norm(null_score: float, windows) -> float:
    """The previous normaliser: the null and every window's spans, a span in an overlap once per window."""
    return float(np.logaddexp.reduce([null_score] + [decoding.span_log_norm for decoding, _ in windows]))


@contextlib.contextmanager
def replaced(module: object, name: str, value: object) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


def held_out_metrics(fit, report, mode: str, confidence_from: str | None = None) -> dict[str, float]:
    """Fit the scoring on `fit`, decide `report` with it; the held-out metrics. With
    `confidence_from` ("margin": the question's margin; "score": the top answer's ranking score),
    the top answer's confidence is refitted on that feature instead of the answer's own margin."""
    from dataclasses import replace

    from rag_qa.answer import sigmoid
    from rag_qa.calibration import _finite, _top_answer_right, decide, fit_logistic, fit_scoring, metrics_for
    from rag_qa.config import DEFAULT_RETRIEVAL_TEMPERATURE
    from rag_qa.evaluate import answer_metrics, top_answer_reliability

    temperature = DEFAULT_RETRIEVAL_TEMPERATURE[mode]
    scoring, _ = fit_scoring(fit, mode)
    results = decide(report, scoring, temperature)
    questions = [c.question for c in report]
    metrics = {**answer_metrics(questions, results), **metrics_for(report, results)}
    if confidence_from is not None:

        def feature(result) -> float:
            return result.margin if confidence_from == "margin" else result.answers[0].score if result.answers else -math.inf

        fitted = decide(fit, scoring, temperature)
        right = np.array([_top_answer_right(c.question, r) for c, r in zip(fit, fitted)], dtype=float)
        scale, bias = fit_logistic(_finite([feature(r) for r in fitted]), right)
        results = [
            replace(r, answers=(replace(r.answers[0], confidence=sigmoid(scale * feature(r) + bias)), *r.answers[1:])) if r.answers else r
            for r in results
        ]  # fmt: skip
        metrics["top_answer_ece"] = top_answer_reliability(questions, results)["ece"]
    metrics["tau"], metrics["retrieval_weight"] = scoring.tau, scoring.retrieval_weight
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def run(reader: str = str(READER), modes: tuple[str, ...] = ("dense", "bm25", "hybrid"), window: tuple[int, int] = (384, 128)) -> dict:
    require_shared()
    import rag_qa.reader
    from rag_qa import RagQA
    from rag_qa.calibration import hold_out_articles, read_once
    from rag_qa.config import ReaderConfig, RetrievalConfig, ScoringConfig
    from rag_qa.evaluate import _content_hashes, _retrieval_metrics
    from rag_qa.squad import load_squad, squad_corpus
    from rag_qa.indexer import add_documents

    documents = squad_corpus([SQUAD / "dev-eval.json", SQUAD / "reader-train.json"], [SQUAD / "distractor-passages.jsonl"])
    questions = load_squad(SQUAD / "dev-eval.json")
    fit_questions, report_questions = hold_out_articles(questions)
    config = ReaderConfig(model=reader, max_seq_len=window[0], doc_stride=window[1])
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        with RagQA.open(folder) as qa:
            add_documents(documents, qa.store, qa.embedder)
        for mode in modes:
            with RagQA.open(folder, reader=config, retrieval=RetrievalConfig(mode=mode, top_k=5), scoring=ScoringConfig()) as qa:
                fit, report = read_once(qa, fit_questions), read_once(qa, report_questions)
                recall = _retrieval_metrics(report_questions, qa.retriever.retrieve([q.question for q in report_questions], top_k=20), _content_hashes(qa))
                rows[f"{mode}: current"] = {**held_out_metrics(fit, report, mode), "recall@5": recall["recall@5"]}
                if mode != modes[0]:
                    continue
                windows = sum(len(qa.reader._features([c.question.question], [h.passage.text])["input_ids"]) > 1 for c in report for h in c.hits)
                rows[f"{mode}: confidence from the margin"] = held_out_metrics(fit, report, mode, confidence_from="margin")
                rows[f"{mode}: confidence from the answer's raw score"] = held_out_metrics(fit, report, mode, confidence_from="score")
                with replaced(rag_qa.reader, "passage_log_norm", per_window_log_norm):
                    fit, report = read_once(qa, fit_questions), read_once(qa, report_questions)
                rows[f"{mode}: per-window normaliser"] = held_out_metrics(fit, report, mode)
    return {"reader": reader, "window": list(window), "fit_questions": len(fit_questions), "report_questions": len(report_questions),
            "paragraphs": len(documents), "multi_window_passages_read": windows, "rows": rows}  # fmt: skip


def markdown(result: dict) -> str:
    rows = [[name] + [metrics.get(k, float("nan")) for k in ["recall@5", "tau", "retrieval_weight", *KEYS]] for name, metrics in result["rows"].items()]
    return table(["variant", "recall@5", "tau", "retrieval_weight", *KEYS], rows) + (
        f"\n\nReader {result['reader']}, windows {result['window'][0]}/{result['window'][1]}; scoring fitted on "
        f"{result['fit_questions']} questions, reported on {result['report_questions']} held-out ones over {result['paragraphs']} "
        f"paragraphs (top 5); {result['multi_window_passages_read']} of the held-out (question, passage) pairs spanned more than one window."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reader", default=str(READER), help="reader folder (default: %(default)s)")
    parser.add_argument("--modes", nargs="+", default=["dense", "bm25", "hybrid"], choices=["dense", "bm25", "hybrid"], help="retrieval modes; the ablations run on the first")
    parser.add_argument("--window", nargs=2, type=int, default=[384, 128], metavar=("LEN", "STRIDE"), help="reader windows (default: 384 128)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    result = run(args.reader, tuple(args.modes), tuple(args.window))
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
