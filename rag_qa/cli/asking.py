"""Commands that read an index: search and ask."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from rag_qa.cli.common import SharedOptions, add_answer_policy, emit, reader_config, runtime
from rag_qa.config import RetrievalConfig, ScoringConfig
from rag_qa.errors import RagQAError
from rag_qa.naming import display_name
from rag_qa.pipeline import RagQA


SOURCE_HELP = (
    "only {what} these documents (repeatable): a path to a file (as indexed, or relative to here), a folder, "
    "or a glob such as 'handbooks/**/*.pdf' (quote it); one that names nothing indexed is an error"
)


def cmd_search(args: argparse.Namespace) -> int:
    with RagQA.open(args.index, read_only=True, runtime=runtime(args), threads=args.threads) as qa:
        hits = qa.search(args.query, top_k=args.top_k, sources=args.source or None, mode=args.retrieval)
    results = [h.to_dict() for h in hits]

    def human() -> None:
        if not results:
            print("no passages found")
        for rank, r in enumerate(results, 1):
            page = f", page {r['page']}" if r["page"] else ""
            print(f"{rank}. [{r['score']:.3f}] {display_name(r['source'])}{page}, chars {r['start']}-{r['end']}")
            print("   " + r["text"][:300].replace("\n", " ") + ("…" if len(r["text"]) > 300 else ""))

    emit(args, {"query": args.query, "results": results}, human)
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
            print(f"   closest match, below the answer threshold: {guess['text']!r} ({display_name(guess['source'])})")
        return
    for rank, answer in enumerate(result["answers"], 1):
        page = f", page {answer['page']}" if answer["page"] else ""
        print(f"{rank}. {answer['text']}   [confidence {answer['confidence']:.0%}; {display_name(answer['source'])}{page}, chars {answer['start']}-{answer['end']}]")
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
    reader = reader_config(args, max_seq_len=args.max_seq_len, doc_stride=args.doc_stride)
    retrieval = RetrievalConfig(mode=args.retrieval, top_k=args.top_k)
    if args.tau is not None and args.answer_policy is not None:
        raise RagQAError("give --tau (the reader's no-answer rule) or --answer-policy, not both")
    with RagQA.open(
        args.index, read_only=True, reader=reader, retrieval=retrieval, runtime=reader.runtime, threads=args.threads, answer_policy=args.answer_policy
    ) as qa:  # fmt: skip
        overrides = {k: v for k, v in (("tau", args.tau), ("retrieval_weight", args.retrieval_weight)) if v is not None}
        if args.tau is not None:
            overrides["answer_threshold"] = None  # the tau rule decides
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


def add_search(sub: Any, o: SharedOptions) -> None:
    p = sub.add_parser("search", parents=[o.common, o.runtime, o.retrieval], help="find the passages `ask` would read for a query")
    p.add_argument("query")
    p.add_argument("--source", action="append", metavar="SOURCE", help=SOURCE_HELP.format(what="search"))
    p.set_defaults(func=cmd_search)


def add_ask(sub: Any, o: SharedOptions) -> None:
    p = sub.add_parser("ask", parents=[o.common, o.reader, o.runtime, o.window, o.retrieval], help="answer questions from the indexed documents (or abstain)")
    p.add_argument("question", nargs="?", help="the question (or use --questions FILE)")
    p.add_argument("--questions", metavar="FILE", help="answer each line of FILE; with --json, one JSON object per line")
    p.add_argument("--source", action="append", metavar="SOURCE", help=SOURCE_HELP.format(what="read"))
    add_answer_policy(p)
    p.add_argument("--tau", type=float, help="decide by the reader's no-answer rule instead: a passage abstains when null - best span > TAU (0: the SQuAD 2.0 rule)")
    p.add_argument("--retrieval-weight", type=float, help=f"weight of the retrieval score in ranking answers (default: fitted, else {ScoringConfig.retrieval_weight})")
    p.set_defaults(func=cmd_ask)
