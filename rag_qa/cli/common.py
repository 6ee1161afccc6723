"""What every `rag-qa` command shares: the option groups, JSON or human output, the metrics table."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rag_qa.config import ANSWER_POLICIES, DEFAULT_ANSWER_POLICY, DEFAULT_READER_MODEL, DEFAULT_READER_REVISION, RETRIEVAL_MODES, RUNTIMES, ReaderConfig, RetrievalConfig
from rag_qa.errors import RagQAError
from rag_qa.pipeline import DEFAULT_INDEX
from rag_qa.precision import PRECISIONS, chosen_precision, runtime_for


@dataclass(frozen=True)
class SharedOptions:
    """Option groups that several commands take (argparse parent parsers)."""

    json: argparse.ArgumentParser
    common: argparse.ArgumentParser
    reader: argparse.ArgumentParser
    runtime: argparse.ArgumentParser
    window: argparse.ArgumentParser
    retrieval: argparse.ArgumentParser


def shared_options() -> SharedOptions:
    json_option = argparse.ArgumentParser(add_help=False)
    json_option.add_argument("--json", action="store_true", help="print JSON for scripts")
    common = argparse.ArgumentParser(add_help=False, parents=[json_option])
    common.add_argument("--index", "--store", dest="index", default=os.environ.get("RAG_QA_INDEX", DEFAULT_INDEX), metavar="DIR|URL", help=f"index folder, or postgresql://user@host/db[#name] for PostgreSQL + pgvector (default: $RAG_QA_INDEX or {DEFAULT_INDEX})")
    reader_options = argparse.ArgumentParser(add_help=False)
    reader_options.add_argument("--reader", default=os.environ.get("RAG_QA_READER", DEFAULT_READER_MODEL), metavar="MODEL", help="question-answering model: Hub id or local folder (default: $RAG_QA_READER or %(default)s)")
    reader_options.add_argument("--reader-revision", default=DEFAULT_READER_REVISION, metavar="REV", help="Hub revision of the reader")
    reader_options.add_argument("--max-answer-tokens", type=int, metavar="N", help=f"longest answer in reader tokens (default: the cap the index's scoring was fitted with, else {ReaderConfig.max_answer_tokens}); raise it for long answers")
    reader_options.add_argument(
        "--precision", choices=PRECISIONS, default=None,
        help="number format the reader computes in: fp32 (the exact reference), bf16 (matrix products in bfloat16 on PyTorch, where the processor has native bf16 instructions, else fp32 with a notice), "
             "int8 (ONNX Runtime), auto (bf16 where native, else fp32) (default: fp32)",
    )  # fmt: skip
    reader_options.add_argument("--int8", action="store_true", help="the same as --precision int8: int8 reader on ONNX Runtime (implies --runtime onnx): faster, the same accuracy within 1%% on dev-eval; calibrate it on its own")
    reader_options.add_argument("--read-in-stages", action="store_true", help="read each question's best passage first and the others only when they could change the top answer or the decision to answer: the same answers from fewer tokens (the list of other answers may be shorter), but one more forward pass where the first passage does not settle it; worth it for batches of questions (default: read every passage)")
    runtime_options = argparse.ArgumentParser(add_help=False)
    runtime_options.add_argument("--runtime", choices=RUNTIMES, help="run the models on ONNX Runtime (the onnx extra: same answers, faster; each model's graph is exported and cached on first use) or on eager PyTorch; auto: $RAG_QA_RUNTIME when set, else onnx when installed, else torch (default: auto)")
    runtime_options.add_argument("--threads", type=int, metavar="N", help="ONNX Runtime threads per model (default: one per core)")
    window_options = argparse.ArgumentParser(add_help=False)
    window_options.add_argument("--max-seq-len", type=int, default=ReaderConfig.max_seq_len, help="reader window in tokens (default: %(default)s)")
    window_options.add_argument("--doc-stride", type=int, default=ReaderConfig.doc_stride, help="window overlap in tokens (default: %(default)s)")
    retrieval_options = argparse.ArgumentParser(add_help=False)
    retrieval_options.add_argument("--top-k", type=int, default=RetrievalConfig.top_k, help="passages per question (default: %(default)s)")
    retrieval_options.add_argument("--retrieval", choices=RETRIEVAL_MODES, default=RetrievalConfig.mode, help="dense (vector search), bm25 (full text) or hybrid: both, fused (default: %(default)s)")
    return SharedOptions(json_option, common, reader_options, runtime_options, window_options, retrieval_options)


def add_answer_policy(parser: argparse.ArgumentParser) -> None:
    """--answer-policy: when an answer is shown rather than "no answer" (one meaning on every corpus)."""
    choices = ", ".join(f"{name} (an answer whose confidence is >= {value:.2f})" for name, value in ANSWER_POLICIES.items())
    parser.add_argument("--answer-policy", choices=list(ANSWER_POLICIES), metavar="POLICY", help=f"when to answer rather than abstain: {choices}; default: the index's own fit (`calibrate`), else the fit rag-qa ships for the reader ({DEFAULT_ANSWER_POLICY}), else the reader's own no-answer rule")


def precision(args: argparse.Namespace) -> str:
    """The precision the reader runs in on this processor (`rag_qa.precision.chosen_precision`);
    a one-line notice on stderr when it is not the one asked for."""
    requested = getattr(args, "precision", None) or ("int8" if getattr(args, "int8", False) else "fp32")
    if getattr(args, "int8", False) and requested != "int8":
        raise RagQAError(f"--int8 and --precision {requested} contradict each other")
    chosen, notice = chosen_precision(requested)
    if notice:
        print(notice, file=sys.stderr)
    return chosen


def runtime(args: argparse.Namespace, chosen: str = "fp32") -> str:
    """The runtime the command line asks for: --runtime, else onnx for int8, torch for bf16, else auto."""
    return args.runtime or runtime_for(chosen)


def reader_config(args: argparse.Namespace, **windows: int) -> ReaderConfig:
    """The reader the command line describes (model, revision, precision, runtime, answer cap;
    `windows` as given)."""
    if args.max_answer_tokens is not None:
        windows["max_answer_tokens"] = args.max_answer_tokens
    chosen = precision(args)
    return ReaderConfig(
        model=args.reader, revision=args.reader_revision, int8=chosen == "int8", bf16=chosen == "bf16", runtime=runtime(args, chosen), threads=args.threads,
        read_in_stages=getattr(args, "read_in_stages", False), **windows,
    )  # fmt: skip


def emit(args: argparse.Namespace, data: dict[str, Any], human: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        human()


def metrics_table(metrics: dict[str, Any]) -> None:
    for key, value in metrics.items():
        if isinstance(value, (list, dict)):  # curves: see --report for their pictures
            continue
        print(f"{key:32} {value:.4f}" if isinstance(value, float) else f"{key:32} {value}")
    if "answerable_share" in metrics:
        print("what shaped the score:")
        print(f"  {metrics['answerable_share']:.1f}% of the questions have an answer; the system abstained on {metrics['abstained_on_answerable']:.1f}% of those")
        if "answers_over_cap" in metrics:
            print(f"  {metrics['answers_over_cap']:.1f}% of those have only answers longer than {metrics['max_answer_tokens']} tokens "
                  "(no answer can match them: raise --max-answer-tokens)")  # fmt: skip
        print(f"  F1 ranges from {metrics['always_abstain_f1']:.1f} (abstain on every question) to {metrics['never_abstain_f1']:.1f} "
              f"(answer every question with the best span) as the no-answer threshold moves; at its best, {metrics['best_f1']:.1f}")  # fmt: skip
    if metrics.get("reliability"):
        print("reliability of the top answer's confidence (bin: questions, mean confidence -> share right):")
        for row in metrics["reliability"]:
            if row["count"]:
                print(f"  {row['lower']:.1f}-{row['upper']:.1f}: {row['count']:5d}, {row['confidence']:.3f} -> {row['accuracy']:.3f}")


def split_groups(values: list[str] | None) -> list[str] | None:
    """Access groups from repeated `--groups A,B` options (None when none was given)."""
    return None if values is None else [g for part in values for g in part.split(",") if g.strip()]
