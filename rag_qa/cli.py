"""The `rag-qa` command. Every command takes `--json` for scripts; human output goes to the terminal
with progress bars on stderr. Exit codes: 0 done, 1 the check or lookup failed, 2 bad input."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rag_qa.config import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_EMBEDDING_REVISION,
    DEFAULT_INCLUDE,
    DEFAULT_READER_MODEL,
    DEFAULT_READER_REVISION,
    DEFAULT_RETRIEVAL_TEMPERATURE,
    INDEX_TYPES,
    RETRIEVAL_MODES,
    ChunkingConfig,
    EmbedderConfig,
    IndexSettings,
    IngestConfig,
    ReaderConfig,
    RetrievalConfig,
    ScoringConfig,
    ServerConfig,
    TrainConfig,
    VectorIndexConfig,
)
from rag_qa.errors import IndexCorruptError, NotFoundError, RagQAError
from rag_qa.pipeline import DEFAULT_INDEX, RagQA


def _emit(args: argparse.Namespace, data: dict[str, Any], human: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        human()


def _settings(args: argparse.Namespace) -> IndexSettings:
    """Settings for a new index from the command line (an existing index keeps its own)."""
    return IndexSettings(
        embedder=EmbedderConfig(model=args.embedder, revision=args.embedder_revision, batch_size=args.batch_size),
        chunking=ChunkingConfig(max_tokens=args.chunk_tokens, overlap_tokens=args.chunk_overlap),
        vector_index=VectorIndexConfig(index_type=args.index_type),
    )


def cmd_index(args: argparse.Namespace) -> int:
    ingest = IngestConfig(
        include=tuple(args.include) if args.include else DEFAULT_INCLUDE,
        exclude=tuple(args.exclude),
        max_file_mb=args.max_file_mb,
        pdf_timeout_s=args.pdf_timeout,
        commit_passages=args.commit_every,
        save_interval_s=args.save_every,
    )
    with RagQA.open(args.index, _settings(args), ingest) as qa:
        report = qa.index(args.paths, progress=not args.json and not args.quiet)

    def human() -> None:
        for skipped in report.files_skipped:
            print(f"skipped {skipped['path']}: {skipped['reason']}", file=sys.stderr)
        unsupported = f" ({report.files_unsupported} of an unsupported format)" if report.files_unsupported else ""
        print(
            f"{report.files_indexed} files indexed, {report.files_unchanged} unchanged, "
            f"{len(report.files_skipped)} skipped{unsupported}; {report.passages_added} passages added, "
            f"{report.passages_total} in {args.index}"
        )

    _emit(args, report.to_dict(), human)
    return 0


def _hit_dict(hit: Any) -> dict[str, Any]:
    p = hit.passage
    return {"score": round(hit.score, 6), "source": p.source, "page": p.page, "start": p.char_start, "end": p.char_end, "text": p.text}


def cmd_search(args: argparse.Namespace) -> int:
    with RagQA.open(args.index, read_only=True) as qa:
        hits = qa.search(args.query, top_k=args.top_k, sources=args.source or None)
    results = [_hit_dict(h) for h in hits]

    def human() -> None:
        if not results:
            print("no passages found")
        for rank, r in enumerate(results, 1):
            page = f", page {r['page']}" if r["page"] else ""
            print(f"{rank}. [{r['score']:.3f}] {r['source']}{page}, chars {r['start']}-{r['end']}")
            print("   " + r["text"][:300].replace("\n", " ") + ("…" if len(r["text"]) > 300 else ""))

    _emit(args, {"query": args.query, "results": results}, human)
    return 0


def _highlight(answer: dict[str, Any], color: bool) -> str:
    """The evidence passage with the answer marked (bold on a terminal, «…» otherwise)."""
    passage = answer["passage"]
    at = answer["start"] - passage["start"] if answer["source"] else answer["start"]
    text = passage["text"]
    before, span, after = text[:at], text[at : at + len(answer["text"])], text[at + len(answer["text"]) :]
    marked = f"\033[1;4m{span}\033[0m" if color else f"«{span}»"
    before = ("…" + before[-200:]) if len(before) > 200 else before
    after = (after[:200] + "…") if len(after) > 200 else after
    return (before + marked + after).replace("\n", " ")


def _print_result(result: dict[str, Any], color: bool) -> None:
    print(f"Q: {result['question']}")
    if result["abstained"]:
        print(f"   no answer found in the documents (confidence {result['no_answer_confidence']:.0%})")
        if "best_guess" in result:
            guess = result["best_guess"]
            print(f"   closest match, below the answer threshold: {guess['text']!r} ({guess['source']})")
        return
    for rank, answer in enumerate(result["answers"], 1):
        page = f", page {answer['page']}" if answer["page"] else ""
        print(f"{rank}. {answer['text']}   [confidence {answer['confidence']:.0%}; {answer['source']}{page}, chars {answer['start']}-{answer['end']}]")
        if rank == 1:
            print("   " + _highlight(answer, color))


def _read_questions(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    except OSError as exc:
        raise RagQAError(f"{path}: cannot read the questions file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise RagQAError(f"{path}: the questions file is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def cmd_ask(args: argparse.Namespace) -> int:
    if (args.question is None) == (args.questions is None):
        raise RagQAError("give one QUESTION or --questions FILE")
    questions = [args.question] if args.question is not None else _read_questions(args.questions)
    reader = ReaderConfig(model=args.reader, revision=args.reader_revision, max_seq_len=args.max_seq_len, doc_stride=args.doc_stride, int8=args.int8)
    retrieval = RetrievalConfig(mode=args.retrieval, top_k=args.top_k)
    with RagQA.open(args.index, read_only=True, reader=reader, retrieval=retrieval) as qa:
        overrides = {k: v for k, v in (("tau", args.tau), ("retrieval_weight", args.retrieval_weight)) if v is not None}
        qa.scoring = replace(qa.scoring, **overrides)
        progress = len(questions) > 1 and not args.json and sys.stderr.isatty()
        results = [r.to_dict() for r in qa.ask_many(questions, sources=args.source or None, progress=progress)]
    for result in results:
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            _print_result(result, sys.stdout.isatty())
            print()
    return 0


def _metrics_table(metrics: dict[str, Any]) -> None:
    for key, value in metrics.items():
        if key == "reliability":
            continue
        print(f"{key:32} {value:.4f}" if isinstance(value, float) else f"{key:32} {value}")
    if metrics.get("reliability"):
        print("reliability of the top answer's confidence (bin: questions, mean confidence -> share right):")
        for row in metrics["reliability"]:
            if row["count"]:
                print(f"  {row['lower']:.1f}-{row['upper']:.1f}: {row['count']:5d}, {row['confidence']:.3f} -> {row['accuracy']:.3f}")


def _write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)


def cmd_eval_squad(args: argparse.Namespace) -> int:
    from rag_qa.evaluate import evaluate_reader, load_squad
    from rag_qa.reader import Reader

    questions = load_squad(args.file)
    reader = Reader(ReaderConfig(model=args.reader, revision=args.reader_revision, max_seq_len=args.max_seq_len, doc_stride=args.doc_stride, int8=args.int8))
    evaluation = evaluate_reader(reader, questions, ScoringConfig(tau=args.tau, retrieval_weight=0.0), progress=not args.json)
    _write_json(args.predictions, evaluation.predictions)
    _write_json(args.na_probs, evaluation.na_probs)
    metrics = {**evaluation.metrics, "questions_per_second": len(questions) / evaluation.seconds}
    _emit(args, metrics, lambda: _metrics_table(metrics))
    return 0


def _split_corpus_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """SQuAD JSON files and JSONL paragraph files, told apart by extension."""
    return [p for p in paths if not p.endswith(".jsonl")], [p for p in paths if p.endswith(".jsonl")]


def cmd_eval_open(args: argparse.Namespace) -> int:
    from rag_qa.evaluate import evaluate_open, load_squad, squad_corpus
    from rag_qa.indexer import add_documents

    squad_files, paragraph_files = _split_corpus_files([args.file, *args.corpus])
    with tempfile.TemporaryDirectory(prefix="rag-qa-eval-") as scratch:
        index = args.index_dir or scratch
        reader = ReaderConfig(model=args.reader, revision=args.reader_revision, int8=args.int8)
        with RagQA.open(index, reader=reader, retrieval=RetrievalConfig(mode=args.retrieval, top_k=args.top_k)) as qa:
            add_documents(squad_corpus(squad_files, paragraph_files), qa.store, qa.embedder, progress=not args.json)
            metrics = evaluate_open(qa, load_squad(args.file), progress=not args.json)
            metrics["passages"] = qa.store.count()
    _emit(args, metrics, lambda: _metrics_table(metrics))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from rag_qa.calibration import decide, fit_scoring, metrics_for, read_once, save_scoring
    from rag_qa.evaluate import load_squad

    questions = load_squad(args.file)
    if args.report_on:
        fit_questions, report_questions = questions, load_squad(args.report_on)
    else:  # hold out whole articles, so no report question shares a paragraph with the fit
        titles = sorted({q.title for q in questions})
        held_out = set(titles[len(titles) * 2 // 3 :]) or set(titles[-1:])
        fit_questions = [q for q in questions if q.title not in held_out]
        report_questions = [q for q in questions if q.title in held_out]
    if not fit_questions or not report_questions:
        raise RagQAError("calibrate needs questions to fit on and different ones to report on; pass --report-on FILE")
    reader = ReaderConfig(model=args.reader, revision=args.reader_revision, int8=args.int8)
    retrieval = RetrievalConfig(mode=args.retrieval, top_k=args.top_k)
    with RagQA.open(args.index, reader=reader, retrieval=retrieval, scoring=ScoringConfig()) as qa:
        if qa.store.count() == 0:
            raise RagQAError(f"{args.index} is empty; index the documents the questions are about first (e.g. `rag-qa eval open FILE --index-dir {args.index}`)")
        temperature = DEFAULT_RETRIEVAL_TEMPERATURE[args.retrieval]
        fitted, details = fit_scoring(read_once(qa, fit_questions, progress=not args.json), args.retrieval)
        report_cache = read_once(qa, report_questions, progress=not args.json)
        report = {
            "default": metrics_for(report_cache, decide(report_cache, ScoringConfig(), temperature)),
            "fitted": metrics_for(report_cache, decide(report_cache, fitted, temperature)),
        }
        details = {**details, "fitted_on": {"file": args.file, "questions": len(fit_questions)},
                   "reported_on": {"file": args.report_on or args.file, "questions": len(report_questions)}, "report": report}  # fmt: skip
        path = save_scoring(qa.store, fitted, args.reader, args.retrieval, details)
    result = {"scoring": fitted.to_dict(), "saved": str(path), **details}

    def human() -> None:
        print(f"fitted on {len(fit_questions)} questions, saved to {path}:")
        for key, value in fitted.to_dict().items():
            print(f"  {key:24} {value}")
        print(f"reported on {len(report_questions)} other questions (default -> fitted):")
        for key in ("exact", "f1", "HasAns_f1", "NoAns_exact", "expected_calibration_error", "top_answer_ece"):
            print(f"  {key:24} {report['default'].get(key, 0):.2f} -> {report['fitted'].get(key, 0):.2f}")

    _emit(args, result, human)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with RagQA.open(args.index, read_only=True) as qa:
        info = qa.info().to_dict()
        if args.files:
            info["file_list"] = [{k: f[k] for k in ("source", "passages", "content_hash")} for f in qa.store.files()]

    def human() -> None:
        for key, value in info.items():
            if key != "file_list":
                print(f"{key:20} {value}")
        for f in info.get("file_list", []):
            print(f"  {f['passages']:6} passages  {f['source']}")

    _emit(args, info, human)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    try:
        qa = RagQA.open(args.index, read_only=args.no_repair)
    except IndexCorruptError as exc:
        problem = str(exc)
        _emit(args, {"consistent": False, "problems": [problem], "recovered": False}, lambda: print(f"NOT consistent: {problem}"))
        return 1
    with qa:
        recovered = qa.store.recovered
        qa.store.flush()
        problems = qa.store.check()
        info = qa.info().to_dict()
    result = {"consistent": not problems, "problems": problems, "recovered": recovered, **info}

    def human() -> None:
        if recovered:
            print("the FAISS index was behind SQLite (interrupted run?) and was rebuilt from it")
        if problems:
            print("NOT consistent:\n  " + "\n  ".join(problems))
        else:
            print(f"consistent: {info['passages']} passages, {info['vectors']} vectors, {info['files']} files")

    _emit(args, result, human)
    return 1 if problems else 0


def cmd_delete(args: argparse.Namespace) -> int:
    with RagQA.open(args.index) as qa:
        removed = qa.delete(args.source)
        remaining = qa.store.count()
    result = {"source": args.source, "passages_removed": removed, "passages_total": remaining}
    found = removed > 0

    def human() -> None:
        if found:
            print(f"removed {removed} passages of {args.source}; {remaining} remain")
        else:
            print(f"{args.source} is not in the index (see `rag-qa info --files --index {args.index}`)")

    _emit(args, result, human)
    return 0 if found else 1


def cmd_show(args: argparse.Namespace) -> int:
    with RagQA.open(args.index, read_only=True) as qa:
        shown = qa.show(args.source, args.page)
    _emit(args, shown.to_dict(), lambda: print(shown.text))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rag_qa.train import train

    config = TrainConfig(
        base=args.base, train_file=args.train, out=args.out, dev_file=args.dev, revision=args.revision, epochs=args.epochs,
        max_steps=args.max_steps, max_seq_len=args.max_seq_len, doc_stride=args.doc_stride, batch_size=args.batch_size,
        learning_rate=args.lr, warmup_ratio=args.warmup, seed=args.seed, checkpoint_every=args.checkpoint_every,
    )  # fmt: skip
    report = train(config, overwrite=args.overwrite, progress=not args.json)

    def human() -> None:
        if report.mismatched:
            print(f"skipped {report.mismatched} answers whose text is not the context at answer_start, e.g.:", file=sys.stderr)
            for bad in report.mismatched_examples:
                print(f"  {bad['id']}: answer {bad['answer']!r} but context has {bad['context_there']!r}", file=sys.stderr)
        if report.resumed_from_step:
            print(f"resumed from the checkpoint at step {report.resumed_from_step}")
        head = "new QA head" if report.new_head else "continued fine-tuning"
        print(f"trained {report.steps} steps ({head}, lr {report.learning_rate:g}) on {report.windows} windows "
              f"of {report.examples} questions: {report.windows_per_second} windows/s; saved to {report.out}")  # fmt: skip
        if report.dev_metrics:
            _metrics_table(report.dev_metrics)

    _emit(args, report.to_dict(), human)
    return 0


def default_upload_dir(index: str) -> str:
    """Uploads live in the index folder, or beside the working directory for a database index."""
    from rag_qa.store.pg_store import is_database_url

    return "rag-qa-uploads" if is_database_url(index) else os.path.join(index, "uploads")


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from rag_qa.server import create_app
    except ImportError as exc:
        raise RagQAError(f"the service needs the server extra: pip install 'rag-qa[server]' ({exc})") from None
    config = ServerConfig(
        upload_dir=args.upload_dir or default_upload_dir(args.index), max_upload_mb=args.max_upload_mb,
        max_question_chars=args.max_question_chars, max_top_k=args.max_top_k,
    )  # fmt: skip
    reader = ReaderConfig(model=args.reader, revision=args.reader_revision, int8=args.int8)
    with RagQA.open(args.index, reader=reader, retrieval=RetrievalConfig(mode=args.retrieval, top_k=args.top_k)) as qa:
        qa.embedder.warm_up()  # load both models now, not on the first request
        qa.reader.warm_up()
        print(f"rag-qa serving {qa.store.path} on http://{args.host}:{args.port}/ (API docs at /docs)", file=sys.stderr)
        uvicorn.run(create_app(qa, config), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag-qa",
        description="Index documents (PDF, text, Markdown, HTML), then search them or ask questions answered "
        "with exact quotes, their source, page and a confidence, or an honest 'no answer'.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    json_option = argparse.ArgumentParser(add_help=False)
    json_option.add_argument("--json", action="store_true", help="print JSON for scripts")
    common = argparse.ArgumentParser(add_help=False, parents=[json_option])
    common.add_argument("--index", "--store", dest="index", default=os.environ.get("RAG_QA_INDEX", DEFAULT_INDEX), metavar="DIR|URL", help=f"index folder, or postgresql://user@host/db[#name] for PostgreSQL + pgvector (default: $RAG_QA_INDEX or {DEFAULT_INDEX})")
    reader_options = argparse.ArgumentParser(add_help=False)
    reader_options.add_argument("--reader", default=os.environ.get("RAG_QA_READER", DEFAULT_READER_MODEL), metavar="MODEL", help="question-answering model: Hub id or local folder (default: $RAG_QA_READER or %(default)s)")
    reader_options.add_argument("--reader-revision", default=DEFAULT_READER_REVISION, metavar="REV", help="Hub revision of the reader")
    reader_options.add_argument("--int8", action="store_true", help="quantize the reader to int8 (CPU): about 2x faster, slightly different scores")
    window_options = argparse.ArgumentParser(add_help=False)
    window_options.add_argument("--max-seq-len", type=int, default=ReaderConfig.max_seq_len, help="reader window in tokens (default: %(default)s)")
    window_options.add_argument("--doc-stride", type=int, default=ReaderConfig.doc_stride, help="window overlap in tokens (default: %(default)s)")
    retrieval_options = argparse.ArgumentParser(add_help=False)
    retrieval_options.add_argument("--top-k", type=int, default=RetrievalConfig.top_k, help="passages read per question (default: %(default)s)")
    retrieval_options.add_argument("--retrieval", choices=RETRIEVAL_MODES, default="dense", help="dense (vector search), bm25 (full text) or hybrid fusion (default: %(default)s)")

    p = sub.add_parser("index", parents=[common], help="add or update files and folders in an index")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (walked recursively)")
    p.add_argument("--include", action="append", metavar="GLOB", help=f"file patterns to index in folders (default: {' '.join(DEFAULT_INCLUDE)})")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="file patterns to leave out")
    p.add_argument("--max-file-mb", type=float, default=IngestConfig.max_file_mb, help="skip larger files (default: %(default)s)")
    p.add_argument("--pdf-timeout", type=float, default=IngestConfig.pdf_timeout_s, metavar="S", help="give up on a PDF after S seconds (default: %(default)s)")
    p.add_argument("--commit-every", type=int, default=IngestConfig.commit_passages, metavar="N", help="commit to the index every N passages: an interrupted run loses at most this many (default: %(default)s)")
    p.add_argument("--save-every", type=float, default=IngestConfig.save_interval_s, metavar="S", help="save the FAISS file at least every S seconds (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    new = p.add_argument_group("settings for a new index (an existing index keeps its own)")
    new.add_argument("--embedder", default=DEFAULT_EMBEDDING_MODEL, metavar="MODEL", help="sentence-transformers model id or local folder (default: %(default)s)")
    new.add_argument("--embedder-revision", default=DEFAULT_EMBEDDING_REVISION, metavar="REV", help="Hub revision of the embedder (default: pinned)")
    new.add_argument("--batch-size", type=int, default=EmbedderConfig.batch_size, help="embedding batch size (default: %(default)s)")
    new.add_argument("--chunk-tokens", type=int, default=ChunkingConfig.max_tokens, help="passage size in tokens (default: %(default)s)")
    new.add_argument("--chunk-overlap", type=int, default=ChunkingConfig.overlap_tokens, help="overlap in tokens (default: %(default)s)")
    new.add_argument("--index-type", choices=INDEX_TYPES, default="auto", help="FAISS index: exact flat, HNSW, or auto by size (default: auto)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common], help="find the passages closest to a query")
    p.add_argument("query")
    p.add_argument("--top-k", type=int, default=5, help="number of passages (default: %(default)s)")
    p.add_argument("--source", action="append", metavar="SOURCE", help="only search these files (repeatable)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", parents=[common, reader_options, window_options, retrieval_options], help="answer questions from the indexed documents (or abstain)")
    p.add_argument("question", nargs="?", help="the question (or use --questions FILE)")
    p.add_argument("--questions", metavar="FILE", help="answer each line of FILE; with --json, one JSON object per line")
    p.add_argument("--source", action="append", metavar="SOURCE", help="only use these files (repeatable)")
    p.add_argument("--tau", type=float, help=f"no-answer threshold: a passage abstains when null - best span > TAU (default: fitted by `calibrate`, else {ScoringConfig.tau})")
    p.add_argument("--retrieval-weight", type=float, help=f"weight of the retrieval score in ranking answers (default: fitted, else {ScoringConfig.retrieval_weight})")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="evaluate on SQuAD-format data")
    evals = p.add_subparsers(dest="eval_command", required=True, metavar="KIND")
    e = evals.add_parser("squad", parents=[reader_options, window_options, json_option], help="reader only: each question against its own paragraph (official SQuAD 2.0 metrics)")
    e.add_argument("file", metavar="FILE", help="SQuAD 1.1/2.0 JSON file")
    e.add_argument("--tau", type=float, default=0.0, help="no-answer threshold (default: %(default)s, the SQuAD rule)")
    e.add_argument("--predictions", metavar="OUT.json", help="write predictions in the official format")
    e.add_argument("--na-probs", metavar="OUT.json", help="write no-answer probabilities in the official format")
    e.set_defaults(func=cmd_eval_squad)
    e = evals.add_parser("open", parents=[reader_options, retrieval_options, json_option], help="corpus-wide: index all paragraphs, ask every question of FILE")
    e.add_argument("file", metavar="FILE", help="SQuAD JSON file whose questions are asked (its paragraphs are indexed)")
    e.add_argument("--corpus", nargs="*", default=[], metavar="MORE", help="more paragraphs: SQuAD .json files or .jsonl lines of {title, paragraph, text}")
    e.add_argument("--index-dir", metavar="DIR", help="keep the corpus index here (default: a temporary folder)")
    e.set_defaults(func=cmd_eval_open)

    p = sub.add_parser("calibrate", parents=[common, reader_options, retrieval_options], help="fit tau, the retrieval weight and confidence calibration; save them with the index")
    p.add_argument("file", metavar="FILE", help="SQuAD JSON file of questions about documents already in the index")
    p.add_argument("--report-on", metavar="FILE", help="report on these questions (default: hold out a third of FILE's articles)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("train", parents=[json_option], help="fine-tune a reader on SQuAD-format data (resumes an interrupted run)")
    p.add_argument("--base", required=True, metavar="MODEL", help=f"a QA model to fine-tune further, or a plain encoder that gets a new QA head (e.g. {DEFAULT_EMBEDDING_MODEL}, bundled offline): Hub id or local folder")
    p.add_argument("--revision", metavar="REV", help="Hub revision of the base model")
    p.add_argument("--train", required=True, metavar="FILE", help="SQuAD 1.1/2.0 JSON training file")
    p.add_argument("--dev", metavar="FILE", help="SQuAD JSON file to evaluate the result on (metrics go into the model card)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the trained model (and its checkpoints while training) go")
    p.add_argument("--epochs", type=float, default=TrainConfig.epochs, help="passes over the data (default: %(default)s)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps instead")
    p.add_argument("--max-seq-len", type=int, default=TrainConfig.max_seq_len, help="window in tokens (default: %(default)s)")
    p.add_argument("--doc-stride", type=int, default=TrainConfig.doc_stride, help="window overlap in tokens (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="windows per step (default: %(default)s)")
    p.add_argument("--lr", type=float, metavar="RATE", help="peak learning rate (default: 1e-4 for a new QA head, 3e-5 to continue a QA model)")
    p.add_argument("--warmup", type=float, default=TrainConfig.warmup_ratio, metavar="RATIO", help="share of steps spent warming up (default: %(default)s)")
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed for initialisation, shuffling and dropout (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every, metavar="N", help="save a resumable checkpoint every N steps (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="delete what DIR holds and start afresh")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("serve", parents=[common, reader_options, retrieval_options], help="HTTP API and web page for asking questions and uploading documents")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 exposes the service to your network)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--upload-dir", metavar="DIR", help="where uploaded files are kept (default: INDEX/uploads, or ./rag-qa-uploads for a database)")
    p.add_argument("--max-upload-mb", type=float, default=ServerConfig.max_upload_mb, help="largest upload request (default: %(default)s)")
    p.add_argument("--max-question-chars", type=int, default=ServerConfig.max_question_chars, help="longest question (default: %(default)s)")
    p.add_argument("--max-top-k", type=int, default=ServerConfig.max_top_k, help="largest top_k a request may ask for (default: %(default)s)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="server log level (default: %(default)s)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("info", parents=[common], help="describe an index")
    p.add_argument("--files", action="store_true", help="also list the indexed files")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("check", parents=[common], help="verify that FAISS, SQLite and the full-text table agree")
    p.add_argument("--no-repair", action="store_true", help="only report; do not rebuild a stale FAISS file")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("show", parents=[common], help="print the text that a document's answer offsets index")
    p.add_argument("source", metavar="SOURCE", help="the file path as indexed (see `rag-qa info --files`)")
    p.add_argument("--page", type=int, metavar="N", help="only page N of a PDF (JSON gives its start and end in the whole text)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("delete", parents=[common], help="remove a file's passages from an index")
    p.add_argument("source", metavar="SOURCE", help="the file path as indexed")
    p.set_defaults(func=cmd_delete)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NotFoundError as exc:
        print(f"rag-qa: {exc}", file=sys.stderr)
        return 1
    except RagQAError as exc:
        print(f"rag-qa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rag-qa: interrupted; the index keeps everything committed so far", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
