"""Commands that measure and fit: eval squad, eval open, calibrate."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from typing import Any

from rag_qa.cli.common import SharedOptions, add_answer_policy, emit, metrics_table, reader_config
from rag_qa.config import DEFAULT_RETRIEVAL_TEMPERATURE, RetrievalConfig, ScoringConfig
from rag_qa.errors import RagQAError
from rag_qa.pipeline import RagQA
from rag_qa.squad import SHOWN_MISMATCHES


REPORT_HELP = "write pictures (reliability diagram, risk-coverage curve) and an HTML page with the headline numbers into DIR"


def _write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)


def _report(args: argparse.Namespace, metrics: dict[str, Any], title: str, points: dict[str, dict[str, float]] | None = None) -> None:
    """With --report DIR: the pictures and the HTML page (see `rag_qa.report`); says where on stderr."""
    if args.report:
        from rag_qa.report import write_report

        page = write_report(args.report, metrics, title, points)
        print(f"report: {page}", file=sys.stderr)


def _questions(args: argparse.Namespace) -> list[Any]:
    """The questions of FILE (`--sample N` of them, drawn with `--seed`); answers whose text is
    not the context at their answer_start are reported on stderr, as `train` does."""
    from rag_qa.squad import read_squad, sample_questions

    found = read_squad(args.file)
    if found.mismatched:
        print(f"{args.file}: {len(found.mismatched)} of {found.answers} gold answers are not the context's text at their "
              "answer_start (kept for EM/F1, left out of passage-level recall), e.g.:", file=sys.stderr)  # fmt: skip
        for bad in found.mismatched[:SHOWN_MISMATCHES]:
            print(f"  {bad['id']}: answer {bad['answer']!r} at {bad['answer_start']}, context has {bad['context_there']!r}", file=sys.stderr)
    return sample_questions(found.questions, args.sample, args.seed)


def cmd_eval_squad(args: argparse.Namespace) -> int:
    from rag_qa.evaluate import evaluate_reader
    from rag_qa.reader import Reader

    questions = _questions(args)
    reader = Reader(reader_config(args, max_seq_len=args.max_seq_len, doc_stride=args.doc_stride))
    evaluation = evaluate_reader(reader, questions, ScoringConfig(tau=args.tau, retrieval_weight=0.0), progress=not args.json)
    _write_json(args.predictions, evaluation.predictions)
    _write_json(args.na_probs, evaluation.na_probs)
    metrics = {**evaluation.metrics, "questions_per_second": len(questions) / evaluation.seconds}
    _report(args, metrics, f"Reader on {args.file} ({args.reader})")
    emit(args, metrics, lambda: metrics_table(metrics))
    return 0


def cmd_eval_open(args: argparse.Namespace) -> int:
    from rag_qa.evaluate import evaluate_open, index_squad_corpus

    with tempfile.TemporaryDirectory(prefix="rag-qa-eval-") as scratch:
        index = args.index_dir or scratch
        reader = reader_config(args)
        retrieval = RetrievalConfig(mode=args.retrieval, top_k=args.top_k)
        with RagQA.open(index, reader=reader, retrieval=retrieval, runtime=reader.runtime, threads=args.threads, answer_policy=args.answer_policy) as qa:
            index_squad_corpus(qa, [args.file, *args.corpus], progress=not args.json)
            metrics = evaluate_open(qa, _questions(args), progress=not args.json)
            metrics["passages"] = qa.store.count()
    _report(args, metrics, f"End to end on {args.file} ({args.retrieval} retrieval, {args.reader})")
    emit(args, metrics, lambda: metrics_table(metrics))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from rag_qa.calibration import decide, fit_answer_cap, hold_out_articles, metrics_for, read_once
    from rag_qa.evaluate import answer_metrics
    from rag_qa.squad import load_squad
    from rag_qa.saved_scoring import save_scoring

    questions = load_squad(args.file)
    if args.report_on:
        fit_questions, report_questions = questions, load_squad(args.report_on)
    else:
        fit_questions, report_questions = hold_out_articles(questions)
    if not fit_questions or not report_questions:
        raise RagQAError("calibrate needs questions to fit on and different ones to report on; pass --report-on FILE")
    reader = reader_config(args)
    retrieval = RetrievalConfig(mode=args.retrieval, top_k=args.top_k)
    with RagQA.open(args.index, reader=reader, retrieval=retrieval, scoring=ScoringConfig(), runtime=reader.runtime, threads=args.threads) as qa:
        if qa.store.count() == 0:
            raise RagQAError(f"{args.index} is empty; index the documents the questions are about first (e.g. `rag-qa eval open FILE --index-dir {args.index}`)")
        temperature = DEFAULT_RETRIEVAL_TEMPERATURE[args.retrieval]
        reader_as_given = qa.reader
        caps = args.fit_max_answer_tokens or [reader_as_given.config.max_answer_tokens]
        readings = {}
        for cap in caps:  # the model runs once per cap: decoding depends on it
            qa.reader = reader_as_given.with_answer_cap(cap)
            readings[cap] = read_once(qa, fit_questions, progress=not args.json)
        fitted, details = fit_answer_cap(readings, args.retrieval, objective=args.objective)
        qa.reader = reader_as_given.with_answer_cap(fitted.max_answer_tokens or reader_as_given.config.max_answer_tokens)
        report_cache = read_once(qa, report_questions, progress=not args.json)
        fitted_results = decide(report_cache, fitted, temperature)
        qa.reader = reader_as_given
        default_cache = report_cache if qa.reader.config.max_answer_tokens == fitted.max_answer_tokens else read_once(qa, report_questions)
        report = {
            "default": metrics_for(default_cache, decide(default_cache, ScoringConfig(), temperature)),
            "fitted": metrics_for(report_cache, fitted_results),
        }
        if args.report:  # the held-out curve is only drawn, not reported in the JSON
            points = {"defaults": report["default"], f"fitted ({args.objective})": report["fitted"]}
            title = f"Calibration for {args.objective}, on {len(report_questions)} held-out questions"
            _report(args, answer_metrics(report_questions, fitted_results), title, points)
        details = {**details, "fitted_on": {"file": args.file, "questions": len(fit_questions)},
                   "reported_on": {"file": args.report_on or args.file, "questions": len(report_questions)}, "report": report}  # fmt: skip
        path = save_scoring(qa.store, fitted, args.reader, args.retrieval, details, precision=reader.precision)
    result = {"scoring": fitted.to_dict(), "saved": str(path), **details}

    def human() -> None:
        print(f"fitted on {len(fit_questions)} questions, saved to {path}:")
        for key, value in fitted.to_dict().items():
            print(f"  {key:24} {value}")
        if not details["objective_met"]:
            print(f"  the objective {args.objective} was not reached on the fit questions; this is the nearest point")
        if len(details["answer_caps"]) > 1:
            tried = ", ".join(f"{cap}: F1 {point['f1']:.2f}" for cap, point in details["answer_caps"].items())
            print(f"  answer caps tried on the fit questions ({tried}); kept {fitted.max_answer_tokens}")
        print(f"reported on {len(report_questions)} other questions (default -> fitted):")
        for key in ("exact", "f1", "HasAns_f1", "NoAns_exact", "coverage", "answer_f1", "expected_calibration_error", "top_answer_ece"):
            print(f"  {key:24} {report['default'].get(key, 0):.2f} -> {report['fitted'].get(key, 0):.2f}")

    emit(args, result, human)
    return 0


def add_eval(sub: Any, o: SharedOptions) -> None:
    p = sub.add_parser("eval", help="evaluate on SQuAD-format data")
    evals = p.add_subparsers(dest="eval_command", required=True, metavar="KIND")
    e = evals.add_parser("squad", parents=[o.reader, o.runtime, o.window, o.json], help="reader only: each question against its own paragraph (official SQuAD 2.0 metrics)")
    e.add_argument("file", metavar="FILE", help="SQuAD 1.1/2.0 JSON file")
    e.add_argument("--tau", type=float, default=0.0, help="no-answer threshold (default: %(default)s, the SQuAD rule)")
    e.add_argument("--predictions", metavar="OUT.json", help="write predictions in the official format")
    e.add_argument("--na-probs", metavar="OUT.json", help="write no-answer probabilities in the official format")
    e.add_argument("--report", metavar="DIR", help=REPORT_HELP)
    _sample_options(e)
    e.set_defaults(func=cmd_eval_squad)
    e = evals.add_parser("open", parents=[o.reader, o.runtime, o.retrieval, o.json], help="corpus-wide: index all paragraphs, ask every question of FILE")
    add_answer_policy(e)
    e.add_argument("file", metavar="FILE", help="SQuAD JSON file whose questions are asked (its paragraphs are indexed)")
    e.add_argument("--corpus", nargs="*", default=[], metavar="MORE", help="more paragraphs: SQuAD .json files or .jsonl lines of {title, paragraph, text}")
    e.add_argument("--index-dir", metavar="DIR", help="keep the corpus index here (default: a temporary folder)")
    e.add_argument("--report", metavar="DIR", help=REPORT_HELP + ", and recall@k")
    _sample_options(e)
    e.set_defaults(func=cmd_eval_open)


def _sample_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sample", type=int, metavar="N", help="ask N of FILE's questions, drawn at random (the corpus stays whole)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default: %(default)s)")


def _objective(text: str) -> str:
    from rag_qa.calibration import parse_objective

    try:
        parse_objective(text)
    except RagQAError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_calibrate(sub: Any, o: SharedOptions) -> None:
    p = sub.add_parser("calibrate", parents=[o.common, o.reader, o.runtime, o.retrieval], help="fit the answer confidence and the threshold for an objective; save them with the index")
    p.add_argument("file", metavar="FILE", help="SQuAD JSON file of questions about documents already in the index")
    p.add_argument("--report-on", metavar="FILE", help="report on these questions (default: hold out a third of FILE's articles)")
    p.add_argument("--objective", default="f1", type=_objective, metavar="f1|precision:P|coverage:C|policy:NAME",
                   help="the operating point: f1 = the best SQuAD F1 for the questions' mix of answerable and unanswerable; "
                        "precision:0.8 = answer as often as possible while the answers given keep a mean F1 >= 80%%; "
                        "coverage:0.5 = answer half the questions, as precisely as possible; "
                        "policy:balanced = the answer policy's threshold, the confidence fitted on these questions (default: %(default)s)")  # fmt: skip
    p.add_argument("--fit-max-answer-tokens", type=int, nargs="+", metavar="N", help="fit the answer cap too: read the questions at each cap (e.g. 30 60 100) and keep the one that best meets the objective; saved with the fit, and used by ask and serve")
    p.add_argument("--report", metavar="DIR", help="write the held-out risk-coverage curve with the default and fitted points, the reliability diagram and an HTML page into DIR")
    p.set_defaults(func=cmd_calibrate)
